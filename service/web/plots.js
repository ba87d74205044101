// SVG drawn by hand: a parameter's round boxes with the trials as points, and the best
// value so far over time. Every element carries data-* attributes (its values and round),
// so tests and users' scripts can read the picture as well as see it.

import { formatNumber, scaleOf } from "./scales.js";

const SVG = "http://www.w3.org/2000/svg";
const ROUND_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];
// Viridis, coarsely: dark = worst, yellow = best.
const VALUE_STOPS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];

export function roundColour(round) {
  return ROUND_COLOURS[(round - 1) % ROUND_COLOURS.length];
}

export function valueColour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VALUE_STOPS.length - 1);
  const i = Math.min(Math.floor(x), VALUE_STOPS.length - 2);
  const mix = (a, b, f) => Math.round(a + (b - a) * f);
  const rgb = (hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  const [a, b] = [rgb(VALUE_STOPS[i]), rgb(VALUE_STOPS[i + 1])];
  return `rgb(${a.map((c, k) => mix(c, b[k], x - i)).join(",")})`;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Ranks every drawn value into [0, 1], 1 = best: robust to a few huge losses.
export function valueRanks(points, direction) {
  const values = points.map((p) => p.value).sort((a, b) => a - b);
  const n = values.length;
  return (v) => {
    if (n <= 1) return 1;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (values[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    const t = lo / (n - 1);
    return direction === "minimize" ? 1 - t : t;
  };
}

function jitter(number) {
  // A fixed offset per trial, so a redraw does not shuffle the points.
  const x = Math.sin(number * 12.9898) * 43758.5453;
  return x - Math.floor(x);
}

const WIDTH = 760;
const LEFT = 78;
const RIGHT = 16;
const ROW = 26;
const AXIS = 34;

// One numeric parameter: per round a band with its box, its points and, when given, the
// preview of the next round's box; the incumbent ringed and marked down the rows.
export function parameterPlot({ name, param, rounds, pointsByRound, incumbent, preview, rankOf }) {
  const rows = rounds.length + (preview ? 1 : 0);
  const height = rows * ROW + AXIS + 6;
  const x = scaleOf(param, LEFT, WIDTH - RIGHT);
  const root = svg("svg", {
    class: "param-plot",
    "data-param": name,
    "data-scale": param.scale || "linear",
    viewBox: `0 0 ${WIDTH} ${height}`,
    width: WIDTH,
    height,
    role: "img",
    "aria-label": `${name}: round boxes and trials`,
  });
  const clamp = (v) => Math.min(Math.max(v, param.low), param.high);
  rounds.forEach((round, index) => {
    const top = index * ROW + 3;
    const range = round.box[name];
    const band = svg("g", { class: "round-row", "data-round": round.number });
    band.append(svg("text", { x: 4, y: top + ROW / 2 + 4, class: "row-label" }, `round ${round.number}`));
    if (range && range.low !== undefined) {
      const x0 = x(clamp(range.low));
      const x1 = x(clamp(range.high));
      band.append(
        svg(
          "rect",
          {
            class: "round-box",
            "data-round": round.number,
            "data-low": range.low,
            "data-high": range.high,
            x: x0.toFixed(2),
            y: top,
            width: Math.max(x1 - x0, 1).toFixed(2),
            height: ROW - 6,
            fill: roundColour(round.number),
            "fill-opacity": 0.14,
            stroke: roundColour(round.number),
            "stroke-width": 1.5,
            rx: 3,
          },
          svg("title", {}, `round ${round.number}: ${formatNumber(range.low)} – ${formatNumber(range.high)}`),
        ),
      );
    }
    for (const point of pointsByRound.get(round.number) || []) {
      const v = point.params[name];
      if (typeof v !== "number") continue;
      band.append(
        svg(
          "circle",
          {
            class: "trial-point",
            "data-round": round.number,
            "data-number": point.number,
            "data-value": point.value,
            cx: x(clamp(v)).toFixed(2),
            cy: (top + 3 + jitter(point.number) * (ROW - 12)).toFixed(2),
            r: 3.2,
            fill: valueColour(rankOf(point.value)),
            stroke: roundColour(round.number),
            "stroke-width": 0.8,
          },
          svg("title", {}, `trial ${point.number} (round ${round.number}): ${name}=${formatNumber(v)}, value ${formatNumber(point.value)}`),
        ),
      );
    }
    root.append(band);
  });
  if (preview && preview.box[name] && preview.box[name].low !== undefined) {
    const top = rounds.length * ROW + 3;
    const range = preview.box[name];
    const x0 = x(clamp(range.low));
    const x1 = x(clamp(range.high));
    root.append(
      svg("text", { x: 4, y: top + ROW / 2 + 4, class: "row-label" }, `next ${preview.number}`),
      svg("rect", {
        class: "preview-box",
        "data-round": preview.number,
        "data-low": range.low,
        "data-high": range.high,
        x: x0.toFixed(2),
        y: top,
        width: Math.max(x1 - x0, 1).toFixed(2),
        height: ROW - 6,
        fill: "none",
        stroke: "#333",
        "stroke-dasharray": "5 3",
        rx: 3,
      }),
    );
  }
  if (incumbent && typeof incumbent.params[name] === "number") {
    const cx = x(clamp(incumbent.params[name]));
    root.append(
      svg("line", { class: "incumbent-line", x1: cx, x2: cx, y1: 2, y2: rows * ROW, stroke: "#d62728", "stroke-dasharray": "2 3" }),
      svg(
        "circle",
        {
          class: "incumbent",
          "data-number": incumbent.number,
          cx,
          cy: Math.max(0, rounds.findIndex((r) => r.number === incumbent.round)) * ROW + ROW / 2,
          r: 6.5,
          fill: "none",
          stroke: "#d62728",
          "stroke-width": 2.2,
        },
        svg("title", {}, `best: trial ${incumbent.number}, ${name}=${formatNumber(incumbent.params[name])}`),
      ),
    );
  }
  const axisY = rows * ROW + 6;
  const axis = svg("g", { class: "axis", "data-scale": param.scale || "linear" });
  axis.append(svg("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: axisY, y2: axisY, stroke: "#555" }));
  for (const tick of x.ticks()) {
    const tx = x(tick);
    axis.append(
      svg(
        "g",
        { class: "tick", "data-value": tick, "data-x": tx.toFixed(3) },
        svg("line", { x1: tx, x2: tx, y1: axisY, y2: axisY + 5, stroke: "#555" }),
        svg("text", { x: tx, y: axisY + 17, "text-anchor": "middle" }, formatNumber(tick)),
      ),
    );
  }
  const scaleName = { log: "log scale", reverse_log: "1 − β, log scale" }[param.scale] || "linear";
  axis.append(svg("text", { x: WIDTH - RIGHT, y: axisY + 31, "text-anchor": "end", class: "axis-name" }, `${name} (${scaleName})`));
  root.append(axis);
  return root;
}

// Time since the first completed trial, in the unit the whole span reads best in, with a
// decimal where whole units would print the same label twice (a 1.3 s span: 0, 0.7, 1.3 s).
export function elapsedLabel(ms, spanMs) {
  const units = [[1000, "s", 120e3], [60e3, "min", 120 * 60e3], [3600e3, "h", 48 * 3600e3], [86400e3, "d", Infinity]];
  const [size, name] = units.find(([, , below]) => spanMs < below);
  const digits = spanMs / size < 10 ? 1 : 0;
  return `${(ms / size).toFixed(digits)} ${name}`;
}

// The best value so far against time: a step line through the improvements.
export function bestSoFarPlot(steps, { direction, metric, until }) {
  const width = 760;
  const height = 220;
  const [left, right, top, bottom] = [70, 16, 12, 34];
  const root = svg("svg", { class: "best-plot", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  if (!steps.length) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no completed trial yet"));
    return root;
  }
  const times = steps.map((s) => Date.parse(s.finished_at));
  const t0 = times[0];
  const t1 = Math.max(until || 0, times[times.length - 1], t0 + 1000);
  const values = steps.map((s) => s.value);
  let [v0, v1] = [Math.min(...values), Math.max(...values)];
  if (v0 === v1) [v0, v1] = [v0 - 0.5 * Math.abs(v0 || 1), v1 + 0.5 * Math.abs(v1 || 1)];
  const px = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const py = (v) => top + (1 - (v - v0) / (v1 - v0)) * (height - top - bottom);
  let d = `M${px(times[0]).toFixed(1)},${py(values[0]).toFixed(1)}`;
  for (let i = 1; i < steps.length; i++) {
    d += ` H${px(times[i]).toFixed(1)} V${py(values[i]).toFixed(1)}`;
  }
  d += ` H${px(t1).toFixed(1)}`;
  root.append(svg("path", { d, fill: "none", stroke: "#4e79a7", "stroke-width": 2 }));
  steps.forEach((step, i) => {
    root.append(
      svg(
        "circle",
        { class: "best-step", "data-number": step.number, "data-value": step.value, cx: px(times[i]), cy: py(values[i]), r: 3.5, fill: "#4e79a7" },
        svg("title", {}, `trial ${step.number}: ${formatNumber(step.value)}`),
      ),
    );
  });
  const axisY = height - bottom;
  root.append(svg("line", { x1: left, x2: width - right, y1: axisY, y2: axisY, stroke: "#555" }));
  root.append(svg("line", { x1: left, x2: left, y1: top, y2: axisY, stroke: "#555" }));
  for (const v of [v0, (v0 + v1) / 2, v1]) {
    root.append(svg("text", { x: left - 6, y: py(v) + 4, "text-anchor": "end" }, formatNumber(v)));
  }
  for (const f of [0, 0.5, 1]) {
    const t = t0 + f * (t1 - t0);
    const anchor = f === 0 ? "start" : f === 1 ? "end" : "middle";
    root.append(svg("text", { x: px(t), y: axisY + 16, "text-anchor": anchor, class: "time-tick" }, elapsedLabel(t - t0, t1 - t0)));
  }
  const better = direction === "minimize" ? "lower is better" : "higher is better";
  root.append(svg("text", { x: width - right, y: height - 2, "text-anchor": "end", class: "axis-name" }, `best ${metric} so far (${better}) over time`));
  return root;
}
