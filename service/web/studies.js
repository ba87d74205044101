// The studies list: status, progress per round, best value, failures by cause, and a link
// to optuna-dashboard for Optuna's own plots.

import { get } from "./api.js";
import { h, progressBar } from "./dom.js";
import { formatNumber } from "./scales.js";

// optuna-dashboard runs beside the API (`hone up`, compose) on port 8080 of the same host.
export function dashboardLink(studyId) {
  return `${location.protocol}//${location.hostname}:8080/dashboard/studies/${studyId}`;
}

function roundProgress(rounds) {
  return h(
    "span",
    { class: "round-progress" },
    rounds.map((round) =>
      progressBar(round.counts.configurations || 0, round.budget, `r${round.number} ${round.counts.configurations || 0}/${round.budget}`),
    ),
  );
}

export async function renderStudies(view) {
  const studies = await get("/studies", { limit: 200 });
  // Rounds and failure causes are per study: a list of hundreds of studies stays a page of
  // small requests (each reads a few counter rows), never a load of their trials.
  const rounds = await Promise.all(studies.map((s) => get(`/studies/${s.id}/rounds`)));
  const details = await Promise.all(
    studies.map((s) => (s.counts.failed > 0 ? get(`/studies/${s.id}`) : Promise.resolve(null))),
  );
  const rows = studies.map((study, i) => {
    const done = study.counts.complete + study.counts.pruned + study.counts.failed;
    const failures = details[i] ? details[i].failures : [];
    return h(
      "tr",
      { "data-study": study.id },
      h("td", {}, study.id),
      h("td", {}, h("a", { href: `#/studies/${study.id}` }, study.name)),
      h("td", {}, h("span", { class: `status status-${study.status}`, title: study.failure || "" }, study.status)),
      h("td", {}, `${study.current_round} / ${study.rounds}`),
      h("td", {}, progressBar(done, study.budget, `${done} / ${study.budget}`), roundProgress(rounds[i])),
      h("td", { class: "num" }, study.best ? formatNumber(study.best.value) : "–"),
      h(
        "td",
        { class: "failures" },
        failures.length
          ? h("ul", {}, failures.map((f) => h("li", {}, h("b", {}, f.count), " ", f.reason)))
          : study.counts.failed
            ? String(study.counts.failed)
            : "none",
      ),
      h("td", {}, h("a", { href: dashboardLink(study.id), target: "_blank", rel: "noopener" }, "optuna-dashboard")),
    );
  });
  view.replaceChildren(
    h("h1", {}, "Studies"),
    studies.length
      ? h(
          "table",
          { class: "grid", id: "studies" },
          h(
            "thead",
            {},
            h("tr", {}, ["id", "name", "status", "round", "progress (trials / budget, per round)", "best", "failures by cause", "plots"].map((t) => h("th", {}, t))),
          ),
          h("tbody", {}, rows),
        )
      : h("p", { class: "empty" }, "No study yet: `hone study create spec.json` makes one."),
  );
  return () => {};
}
