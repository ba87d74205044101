// A parameter's own scale, as hone samples it: linear, log (log10 x) or reverse_log
// (log10 of 1 − β, so β = 0.9, 0.99, 0.999 are evenly spaced), and ticks on it.

function transform(scale) {
  if (scale === "log") {
    return (v) => Math.log10(Math.max(v, Number.MIN_VALUE));
  }
  if (scale === "reverse_log") {
    return (v) => -Math.log10(Math.max(1 - v, Number.MIN_VALUE));
  }
  return (v) => v;
}

// Maps a value in [low, high] to a pixel in [x0, x1] on the parameter's scale.
export function scaleOf({ low, high, scale = "linear", type = "float" }, x0, x1) {
  const f = transform(scale);
  const a = f(low);
  const b = f(high);
  const position = (v) => (b === a ? (x0 + x1) / 2 : x0 + ((f(v) - a) / (b - a)) * (x1 - x0));
  position.ticks = () => ticks(low, high, scale, type === "int");
  position.scale = scale;
  return position;
}

function niceStep(span, count) {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 5, 10].find((m) => m * power >= raw) || 10;
  return unit * power;
}

function linearTicks(low, high, integer) {
  if (high <= low) {
    return [low];
  }
  let step = niceStep(high - low, 5);
  if (integer) {
    step = Math.max(1, Math.round(step));
  }
  const out = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function inside(values, low, high) {
  const eps = (high - low) * 1e-9;
  return [...new Set(values)].filter((v) => v >= low - eps && v <= high + eps).sort((x, y) => x - y);
}

function logTicks(low, high, integer) {
  const first = Math.floor(Math.log10(low));
  const last = Math.ceil(Math.log10(high));
  const decades = [];
  for (let k = first; k <= last; k++) decades.push(10 ** k);
  let out = inside(decades.map((v) => Number(v.toPrecision(12))), low, high);
  if (out.length < 3) {
    const more = decades.flatMap((d) => [d, 2 * d, 5 * d]).map((v) => Number(v.toPrecision(12)));
    out = inside(more, low, high);
  }
  return integer ? [...new Set(out.map(Math.round))] : out;
}

function reverseLogTicks(low, high) {
  // 1 − β on a log scale: 0.9, 0.99, 0.999, … and, when that is too few, 0.95, 0.98, …
  const first = Math.floor(-Math.log10(1 - low));
  const last = Math.ceil(-Math.log10(1 - high));
  const gaps = [];
  for (let k = Math.max(first, 0); k <= last; k++) gaps.push(10 ** -k);
  let out = inside(gaps.map((g) => Number((1 - g).toPrecision(12))), low, high);
  if (out.length < 3) {
    const more = gaps.flatMap((g) => [g, g / 2, g / 5]).map((g) => Number((1 - g).toPrecision(12)));
    out = inside(more, low, high);
  }
  return out;
}

function ticks(low, high, scale, integer) {
  if (scale === "log") return logTicks(low, high, integer);
  if (scale === "reverse_log") return reverseLogTicks(low, high);
  return linearTicks(low, high, integer);
}

export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2).replace("e-", "e−");
  return String(Number(v.toPrecision(4)));
}
