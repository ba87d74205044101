// The fleet: every worker process with its slots (one per device), the lease each slot
// holds, its last heartbeat and its trials in the last hour.

import { get } from "./api.js";
import { ago, h } from "./dom.js";

// A slot's id is "<host>-<pid>-<slot>" (worker/supervisor.py): the process is what precedes the slot.
function processOf(id) {
  const cut = id.lastIndexOf("-");
  return cut > 0 ? id.slice(0, cut) : id;
}

export async function renderFleet(view) {
  const draw = async () => {
    const workers = await get("/workers");
    const processes = new Map();
    for (const w of workers) {
      const key = processOf(w.id);
      if (!processes.has(key)) processes.set(key, []);
      processes.get(key).push(w);
    }
    const alive = workers.filter((w) => w.alive).length;
    const perHour = workers.reduce((sum, w) => sum + (w.trials_last_hour || 0), 0);
    const rows = [];
    for (const [key, slots] of processes) {
      slots.forEach((w, i) => {
        const trial = w.current_trial;
        rows.push(
          h(
            "tr",
            { class: w.alive ? "alive" : "gone", "data-worker": w.id },
            i === 0 ? h("td", { rowspan: slots.length, class: "process" }, key, h("br"), h("small", {}, `${slots.length} slot${slots.length > 1 ? "s" : ""}`)) : null,
            h("td", {}, w.id.slice(key.length + 1) || w.id),
            h("td", {}, w.host || "–"),
            h("td", {}, (w.devices || []).join(", ") || "–"),
            h(
              "td",
              {},
              trial ? h("a", { href: `#/studies/${trial.study_id}` }, `study ${trial.study_id} · trial ${trial.number}`) : "idle",
              trial && w.lease_expires_at ? h("small", {}, ` (lease until ${new Date(w.lease_expires_at).toLocaleTimeString()})`) : null,
            ),
            h("td", { title: w.last_heartbeat }, ago(w.last_heartbeat)),
            h("td", {}, h("span", { class: `status status-${w.alive ? "running" : "stopped"}` }, w.alive ? "alive" : "silent")),
            h("td", { class: "num" }, w.trials_last_hour || 0),
          ),
        );
      });
    }
    view.replaceChildren(
      h("h1", {}, "Fleet"),
      h("p", { class: "summary" }, `${alive} of ${workers.length} slots alive in ${processes.size} worker processes · ${perHour} trials finished in the last hour`),
      workers.length
        ? h(
            "table",
            { class: "grid", id: "workers" },
            h("thead", {}, h("tr", {}, ["worker process", "slot", "host", "devices", "lease held", "last heartbeat", "state", "trials / hour"].map((t) => h("th", {}, t)))),
            h("tbody", {}, rows),
          )
        : h("p", { class: "empty" }, "No worker has asked for work yet: `hone worker` starts one."),
    );
  };
  await draw();
  // Workers have no event stream: the fleet is read again every few seconds.
  const timer = setInterval(() => draw().catch(() => {}), 5000);
  return () => clearInterval(timer);
}
