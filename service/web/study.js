// A study's page: one panel per concern, drawn from a shared state that the events stream
// refreshes. A new panel (e.g. a diagnosis) is one entry in PANELS: an id, a title, what
// it needs loaded, and a draw(state) that returns its content.

import { ApiError, get, post, streamEvents } from "./api.js";
import { ago, h, progressBar } from "./dom.js";
import { bestSoFarPlot, parameterPlot, roundColour, valueColour, valueRanks } from "./plots.js";
import { formatNumber } from "./scales.js";
import { dashboardLink } from "./studies.js";

const POINTS_PER_ROUND = 400;
const TRIALS_PAGE = 50;

async function load(state) {
  const id = state.id;
  [state.study, state.rounds, state.points] = await Promise.all([
    get(`/studies/${id}`),
    get(`/studies/${id}/rounds`),
    get(`/studies/${id}/points`, { per_round: POINTS_PER_ROUND }),
  ]);
  if (state.trials.cursors.length === 1) {
    state.trials.page = await trialsPage(state, null);
  }
  // 409 until a best trial reports a training metric: the panel says why instead.
  state.diagnosis = await get(`/studies/${id}/diagnosis`).catch((error) => ({ unavailable: error.message }));
}

function trialsPage(state, cursor) {
  return get(`/studies/${state.id}/trials`, {
    limit: TRIALS_PAGE,
    order_by: state.trials.orderBy,
    state: state.trials.state || undefined,
    cursor: cursor || undefined,
  });
}

async function loadImportance(state) {
  const ask = (round) =>
    get(`/studies/${state.id}/importance`, { round }).catch((error) => ({ error: error.message }));
  const closed = state.rounds.filter((r) => r.counts.complete > 1).map((r) => r.number);
  const [whole, ...perRound] = await Promise.all([ask(undefined), ...closed.map((n) => ask(n))]);
  state.importance = { whole, perRound: closed.map((n, i) => [n, perRound[i]]) };
}

// -- panels --------------------------------------------------------------------------

function steering(state, redraw) {
  const message = h("span", { class: "message", id: "steer-message" });
  const act = (label, action) =>
    h(
      "button",
      {
        type: "button",
        "data-action": action,
        onclick: async () => {
          message.textContent = "";
          try {
            if (action === "preview") {
              state.preview = await get(`/studies/${state.id}/rounds/next`);
            } else if (action === "open") {
              const trials = document.getElementById("open-trials");
              await post(`/studies/${state.id}/rounds`, trials ? { trials: Number(trials.value) } : {});
              state.preview = null;
            } else {
              await post(`/studies/${state.id}/${action}`);
            }
            await load(state);
            redraw();
          } catch (error) {
            message.textContent =
              error instanceof ApiError && error.status === 403 ? "steering needs an admin token" : error.message;
          }
        },
      },
      label,
    );
  const status = state.study.status;
  return h(
    "div",
    { class: "steering" },
    status === "running" ? act("Pause", "pause") : null,
    status === "paused" || status === "failed" ? act("Resume", "resume") : null,
    status !== "stopped" ? act("Stop", "stop") : null,
    status !== "stopped" && status !== "completed" ? act("Preview next round", "preview") : null,
    // A completed study has no planned next round (the API refuses a preview): it opens
    // one more with the narrowing rule's box and a budget given here.
    (state.preview && state.preview.budget === null) || status === "completed"
      ? h("label", {}, "trials ", h("input", { id: "open-trials", type: "number", min: 1, value: state.rounds[state.rounds.length - 1]?.budget || 10, size: 5 }))
      : null,
    state.preview || status === "completed"
      ? act(`Open round ${state.preview ? state.preview.number : state.study.current_round + 1} now`, "open")
      : null,
    message,
  );
}

function overview(state, redraw) {
  const s = state.study;
  const best = s.best;
  return [
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "status"),
      h("dd", {}, h("span", { class: `status status-${s.status}`, id: "study-status" }, s.status), s.failure ? ` — ${s.failure}` : ""),
      h("dt", {}, "objective"),
      h("dd", {}, `${s.direction} ${s.metric}`),
      h("dt", {}, "best"),
      h("dd", { id: "study-best" }, best ? `${formatNumber(best.value)} (trial ${best.number}, round ${best.round})` : "none yet"),
      h("dt", {}, "trials"),
      h(
        "dd",
        {},
        ["complete", "pruned", "failed", "running", "interrupted", "cancelled"]
          .filter((k) => s.counts[k])
          .map((k) => `${s.counts[k]} ${k}`)
          .join(" · ") || "none yet",
      ),
      h("dt", {}, "failures by cause"),
      h("dd", {}, s.failures.length ? h("ul", {}, s.failures.map((f) => h("li", {}, h("b", {}, f.count), " ", f.reason))) : "none"),
      h("dt", {}, "Optuna's plots"),
      h("dd", {}, h("a", { href: dashboardLink(s.id), target: "_blank", rel: "noopener" }, "optuna-dashboard")),
    ),
    steering(state, redraw),
  ];
}

function progress(state) {
  const current = state.rounds.find((r) => r.number === state.study.current_round) || state.rounds[state.rounds.length - 1];
  const header = ["round", "status", "box", "configurations / budget", "complete", "pruned", "failed", "best"];
  return [
    current
      ? h(
          "p",
          { id: "current-round" },
          `Round ${current.number} (${current.status}): `,
          progressBar(current.counts.configurations || 0, current.budget),
          current.counts.running ? ` · ${current.counts.running} running` : "",
        )
      : null,
    h(
      "table",
      { class: "grid compact", id: "rounds" },
      h("thead", {}, h("tr", {}, header.map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        state.rounds.map((r) =>
          h(
            "tr",
            { "data-round": r.number },
            h("td", {}, h("span", { class: "swatch", style: `background:${roundColour(r.number)}` }), ` ${r.number}`),
            h("td", {}, r.status),
            h("td", { class: "box" }, boxText(r.box)),
            h("td", {}, progressBar(r.counts.configurations || 0, r.budget)),
            h("td", { class: "num" }, r.counts.complete),
            h("td", { class: "num" }, r.counts.pruned),
            h("td", { class: "num" }, r.counts.failed),
            h("td", { class: "num" }, r.best_value === null ? "–" : formatNumber(r.best_value)),
          ),
        ),
      ),
    ),
    state.preview
      ? h("p", { id: "preview" }, `Next round ${state.preview.number} would sample in: `, boxText(state.preview.box), state.preview.budget ? ` (${state.preview.budget} trials)` : "")
      : null,
  ];
}

function boxText(box) {
  return Object.entries(box)
    .map(([name, range]) => (range.choices ? `${name} ∈ {${range.choices.join(", ")}}` : `${name} ∈ [${formatNumber(range.low)}, ${formatNumber(range.high)}]`))
    .join("; ");
}

function boxes(state) {
  const space = state.study.spec.space || {};
  const allPoints = state.points.rounds.flatMap((r) => r.points);
  const rankOf = valueRanks(allPoints, state.study.direction);
  const pointsByRound = new Map(state.points.rounds.map((r) => [r.round, r.points]));
  const sampled = state.points.rounds.filter((r) => r.sampled);
  const plots = [];
  const choices = [];
  for (const [name, param] of Object.entries(space)) {
    if (param.type === "categorical") {
      choices.push(
        h("tr", { "data-param": name }, h("th", {}, name), state.rounds.map((r) => h("td", {}, (r.box[name]?.choices || []).join(", ")))),
      );
      continue;
    }
    const scale = param.scale || (param.log ? "log" : "linear");
    plots.push(
      h(
        "figure",
        { class: "param", "data-param": name },
        h("figcaption", {}, name, h("small", {}, ` ${param.type}, ${scale === "reverse_log" ? "reverse log (1 − β)" : scale}`)),
        parameterPlot({
          name,
          param: { ...param, scale },
          rounds: state.rounds,
          pointsByRound,
          incumbent: state.study.best,
          preview: state.preview,
          rankOf,
        }),
      ),
    );
  }
  const legend = h(
    "p",
    { class: "legend" },
    "Boxes: each round's search box, outlined in the round's colour. Points: completed trials, ringed in their round's colour, filled by value from ",
    h("span", { class: "swatch", style: `background:${valueColour(0)}` }),
    " worst to ",
    h("span", { class: "swatch", style: `background:${valueColour(1)}` }),
    " best. ",
    h("span", { class: "swatch ring" }),
    " the best trial.",
    sampled.length ? ` Rounds ${sampled.map((r) => r.round).join(", ")} are shown by ${POINTS_PER_ROUND} of their trials (their best first).` : "",
  );
  return [
    legend,
    ...plots,
    choices.length
      ? h("table", { class: "grid compact", id: "choices" }, h("thead", {}, h("tr", {}, h("th", {}, "choices"), state.rounds.map((r) => h("th", {}, `round ${r.number}`)))), h("tbody", {}, choices))
      : null,
  ];
}

function bestSoFar(state) {
  const until = state.study.status === "running" ? Date.now() : Date.parse(state.study.updated_at);
  return [bestSoFarPlot(state.points.best_so_far, { direction: state.study.direction, metric: state.study.metric, until })];
}

function importanceTable(result) {
  if (!result || result.error) return h("p", { class: "empty" }, result ? result.error : "…");
  const entries = Object.entries(result.importances).sort((a, b) => b[1] - a[1]);
  return h(
    "table",
    { class: "bars" },
    h(
      "tbody",
      {},
      entries.map(([name, share]) =>
        h(
          "tr",
          { "data-param": name },
          h("th", {}, name),
          h("td", {}, h("span", { class: "bar", style: `width:${(share * 100).toFixed(1)}%` }), ` ${(share * 100).toFixed(0)} %`),
        ),
      ),
    ),
    h("caption", {}, `${result.evaluator}, ${result.trials_used} of ${result.completed_trials} completed trials${result.note ? ` — ${result.note}` : ""}`),
  );
}

function importance(state, redraw) {
  if (!state.importance) {
    return [h("button", { type: "button", onclick: async () => { await loadImportance(state); redraw(); } }, "Compute importances")];
  }
  return [
    h("div", { class: "importance" }, h("div", {}, h("h3", {}, "whole study"), importanceTable(state.importance.whole)),
      state.importance.perRound.map(([n, result]) => h("div", {}, h("h3", {}, `round ${n} (in its box)`), importanceTable(result)))),
    h("button", { type: "button", class: "quiet", onclick: async () => { await loadImportance(state); redraw(); } }, "Recompute"),
  ];
}

function trials(state, redraw) {
  const t = state.trials;
  const page = t.page || { items: [], next_cursor: null };
  const go = async (cursor, push) => {
    t.page = await trialsPage(state, cursor);
    if (push) t.cursors.push(cursor);
    redraw();
  };
  const select = (label, values, current, set) =>
    h(
      "label",
      {},
      `${label} `,
      h(
        "select",
        { onchange: async (e) => { set(e.target.value); t.cursors = [null]; await go(null, false); } },
        values.map(([value, text]) => h("option", { value, selected: value === current }, text)),
      ),
    );
  return [
    h(
      "div",
      { class: "toolbar" },
      select("order", [["number", "by number"], ["value", "best first"]], t.orderBy, (v) => (t.orderBy = v)),
      select("state", [["", "any state"], ...["complete", "pruned", "failed", "running", "interrupted", "cancelled"].map((s) => [s, s])], t.state, (v) => (t.state = v)),
      t.cursors.length > 1 ? h("button", { type: "button", onclick: async () => { t.cursors.pop(); await go(t.cursors[t.cursors.length - 1], false); } }, "← previous") : null,
      page.next_cursor ? h("button", { type: "button", onclick: () => go(page.next_cursor, true) }, "next →") : null,
    ),
    h(
      "table",
      { class: "grid compact", id: "trials" },
      h("thead", {}, h("tr", {}, ["trial", "round", "state", "value", "cause", "reason", "worker", "duration", "finished"].map((x) => h("th", {}, x)))),
      h(
        "tbody",
        {},
        page.items.map((trial) =>
          h(
            "tr",
            { "data-number": trial.number, class: `state-${trial.state}` },
            h("td", { class: "num" }, trial.number),
            h("td", { class: "num" }, trial.round),
            h("td", {}, trial.state),
            h("td", { class: "num" }, formatNumber(trial.value)),
            h("td", {}, trial.cause || ""),
            h("td", { class: "reason", title: trial.reason || "" }, trial.reason || ""),
            h("td", {}, trial.worker_id || ""),
            h("td", { class: "num" }, trial.duration_s === null ? "–" : `${trial.duration_s.toFixed(1)} s`),
            h("td", {}, ago(trial.finished_at)),
          ),
        ),
      ),
    ),
  ];
}

const VERDICTS = { high_bias: "high bias", high_variance: "high variance", both: "high bias and high variance", fine: "fine" };

function moveText(move) {
  const range = (r) => ("choices" in r ? `{${r.choices.join(", ")}}` : `[${formatNumber(r.low)}, ${formatNumber(r.high)}]`);
  return `${move.param} ${move.direction}: ${range(move.before)} → ${range(move.after)}${move.stopped ? ` (${move.stopped})` : ""}`;
}

// The lecture's basic recipe (GET /diagnosis): bias and variance of the best trials, the
// verdict and its advice, and the recipe's next round, which an admin can open from here.
function diagnosis(state, redraw) {
  const d = state.diagnosis;
  if (!d || d.unavailable) {
    return [h("p", { class: "muted", id: "diagnosis-unavailable" }, d ? d.unavailable : "not loaded")];
  }
  const row = (label, value) => h("tr", {}, h("th", {}, label), h("td", { class: "num" }, formatNumber(value)));
  const parts = [
    h("p", {}, "verdict ", h("span", { class: "badge", id: "diagnosis-verdict", "data-verdict": d.verdict }, VERDICTS[d.verdict] || d.verdict),
      ` — ${d.error}, median of the best ${d.trials.length} trial(s)${d.round ? ` of round ${d.round}` : ""}`),
    h(
      "table",
      { class: "grid compact", id: "diagnosis-figures" },
      h("tbody", {},
        row("training error", d.training_error),
        row("validation error", d.validation_error),
        row(`target error (${d.target_source})`, d.target_error),
        row("avoidable bias (training − target)", d.avoidable_bias),
        row("variance (validation − training)", d.variance),
        row("bias threshold", d.thresholds.bias),
        row("variance threshold", d.thresholds.variance)),
    ),
    h("ul", { class: "why" }, [d.why].flat().map((line) => h("li", {}, line))),
    h("h3", {}, "the recipe's advice"),
    h("ul", { id: "diagnosis-advice" }, d.advice.map((line) => h("li", {}, line))),
  ];
  const proposal = d.proposal;
  if (proposal && (proposal.moves.length || proposal.max_epochs)) {
    const message = h("span", { class: "message", id: "diagnosis-message" });
    const open = async () => {
      try {
        await post(`/studies/${state.id}/rounds`, { box: "diagnosis" });
        message.textContent = "opened";
        redraw();
      } catch (error) {
        message.textContent = error instanceof ApiError && error.status === 403 ? "opening a round needs an admin token" : error.message;
      }
    };
    parts.push(
      h("h3", {}, "the recipe's next round"),
      h("ul", { id: "diagnosis-moves" }, [
        ...proposal.moves.map((m) => h("li", {}, moveText(m))),
        ...proposal.notes.map((n) => h("li", { class: "muted" }, n)),
      ]),
      state.study.status === "stopped" ? null : h("div", { class: "toolbar" }, h("button", { type: "button", onclick: open }, "Open the recipe's round"), message),
    );
  }
  return parts;
}

function spec(state) {
  return [h("pre", { class: "spec", id: "spec" }, JSON.stringify(state.study.spec, null, 2))];
}

// live: redrawn when the events stream says the study changed.
export const PANELS = [
  { id: "overview", title: "Overview", live: true, draw: overview },
  { id: "progress", title: "Rounds and progress", live: true, draw: progress },
  { id: "boxes", title: "Coarse to fine: each round's box, per parameter", live: true, draw: boxes },
  { id: "best", title: "Best so far", live: true, draw: bestSoFar },
  { id: "importance", title: "Parameter importance", live: false, draw: importance },
  { id: "diagnosis", title: "Diagnosis: bias and variance (the basic recipe)", live: true, draw: diagnosis },
  { id: "trials", title: "Trials", live: true, draw: trials },
  { id: "spec", title: "Spec", live: false, draw: spec },
];

// What the live panels draw from, to tell whether a reload changed any of it.
const shownData = (state) =>
  JSON.stringify([state.study, state.rounds, state.points, state.trials.page, state.diagnosis]);

export async function renderStudy(view, id, setLive) {
  const state = { id, trials: { orderBy: "number", state: "", cursors: [null], page: null }, preview: null, importance: null };
  await load(state);
  const sections = new Map();
  const drawPanel = (panel) => {
    const section = sections.get(panel.id);
    section.replaceChildren(h("h2", {}, panel.title), ...[panel.draw(state, () => drawAll())].flat().filter((n) => n));
  };
  const drawAll = () => PANELS.forEach(drawPanel);
  const title = h("h1", {}, `Study ${state.study.id}: `, h("span", { id: "study-name" }, state.study.name));
  view.replaceChildren(title);
  for (const panel of PANELS) {
    const section = h("section", { class: "panel", id: `panel-${panel.id}` });
    sections.set(panel.id, section);
    view.append(section);
  }
  drawAll();
  loadImportance(state).then(() => drawPanel(PANELS.find((p) => p.id === "importance"))).catch(() => {});

  // Events come in bursts (a trial event per changed trial): reload at most every 1.5 s.
  const controller = new AbortController();
  let pending = null;
  const refresh = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try {
        const before = shownData(state);
        await load(state);
        // Events of trials that changed just before the stream opened (it looks back a
        // little) bring nothing new: redraw only what changed, so nothing flickers.
        if (shownData(state) === before) return;
        PANELS.filter((p) => p.live).forEach(drawPanel);
        view.dataset.refreshed = String(Date.now());
      } catch {
        // the next event tries again
      }
    }, 1500);
  };
  // A stream opens with a summary (and, for a study not running, its status) of what the
  // page may already show: redraw only when they differ from it.
  const shown = (summary) =>
    JSON.stringify([summary.status, summary.counts, summary.best && summary.best.number, summary.current_round]);
  const onEvent = (name, data) => {
    if (name === "summary" && shown(data) === shown(state.study)) return;
    if (name === "status" && data.status === state.study.status) return;
    refresh();
  };
  streamEvents(`/studies/${id}/events`, onEvent, controller.signal, setLive);
  return () => {
    controller.abort();
    clearTimeout(pending);
    setLive("off");
  };
}
