/* Runs: an experiment's runs, and one run's params, metrics, tags and linked traces. */

import { api, experimentName } from "./api.js";
import { errorBox, formatMs, formatTime, h, truncate } from "./dom.js";
import { routes } from "./router.js";
import { traceTable } from "./traces.js";

const RUN_TRACES_PAGE = 50;

export async function runsPage(ctx, experimentId) {
  ctx.crumbs([["Experiments", routes.experiments()], ["Experiment " + experimentId, routes.traces(experimentId)], ["Runs", null]]);
  const body = h("div", {}, h("p.tla-muted", {}, "Loading runs\u2026"));
  ctx.main.replaceChildren(
    h("div.tla-toolbar", {}, h("h1.tla-title", {}, "Runs"), h("span.tla-grow"), h("a.tla-btn", { href: routes.traces(experimentId) }, "Traces")),
    body,
  );
  api("/experiments/" + encodeURIComponent(experimentId))
    .then((data) => {
      if (ctx.active) {
        const name = String(data.experiment.name);
        ctx.crumbs([["Experiments", routes.experiments()], [name, routes.traces(experimentId)], ["Runs", null]]);
      }
    })
    .catch(() => {});
  let runs;
  try {
    runs = (await api("/runs/search", { method: "POST", body: { experiment_ids: [experimentId], max_results: 500 } })).runs;
  } catch (error) {
    if (ctx.active) body.replaceChildren(errorBox(error));
    return;
  }
  if (!ctx.active) return;
  if (!runs.length) {
    body.replaceChildren(h("p.tla-empty", {}, "No runs in this experiment."));
    return;
  }
  const rows = runs.map((run) => {
    const info = run.info;
    const data = run.data || {};
    const metrics = Object.entries(data.metrics || {}).map(([k, v]) => `${k}=${formatNumber(v)}`);
    const params = Object.entries(data.params || {}).map(([k, v]) => `${k}=${v}`);
    return h(
      "tr",
      { dataset: { runId: String(info.run_id) } },
      h("td.tla-name-cell", {}, h("a.tla-strong", { href: routes.run(info.run_id) }, String(info.run_name || info.run_id))),
      h("td", {}, h("span.tla-state.tla-run-" + runStatus(info.status), {}, String(info.status))),
      h("td.tla-time", {}, formatTime(info.start_time)),
      h("td.tla-num", {}, info.end_time ? formatMs(info.end_time - info.start_time) : "\u2014"),
      h("td.tla-preview", { title: params.join("\n") }, truncate(params.join(", "), 80) || "\u2014"),
      h("td.tla-preview", { title: metrics.join("\n") }, truncate(metrics.join(", "), 80) || "\u2014"),
    );
  });
  body.replaceChildren(
    h(
      "table.tla-table.tla-runs",
      {},
      h("thead", {}, h("tr", {}, ["Run", "Status", "Started", "Duration", "Params", "Metrics"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows),
    ),
  );
}

export async function runPage(ctx, runId) {
  ctx.crumbs([["Experiments", routes.experiments()], ["Run " + runId, null]]);
  const body = h("div", {}, h("p.tla-muted", {}, "Loading run\u2026"));
  ctx.main.replaceChildren(body);
  let run;
  try {
    run = (await api("/runs/" + encodeURIComponent(runId))).run;
  } catch (error) {
    if (ctx.active) body.replaceChildren(errorBox(error));
    return;
  }
  if (!ctx.active) return;
  const info = run.info;
  const data = run.data || {};
  const experimentId = String(info.experiment_id);
  const runName = String(info.run_name || runId);
  const runCrumbs = (name) => ctx.crumbs([["Experiments", routes.experiments()], [name, routes.traces(experimentId)], ["Runs", routes.runs(experimentId)], [runName, null]]);
  runCrumbs("Experiment " + experimentId);
  experimentName(experimentId).then((name) => ctx.active && runCrumbs(name));
  const traces = h("div.tla-table-wrap", {}, h("p.tla-muted", {}, "Loading traces\u2026"));
  const pager = h("div.tla-toolbar");
  body.replaceChildren(
    h("div.tla-toolbar", {}, h("h1.tla-title", {}, runName), h("span.tla-state.tla-run-" + runStatus(info.status), {}, String(info.status))),
    h(
      "dl.tla-facts",
      {},
      fact("Run ID", runId),
      fact("Started", formatTime(info.start_time)),
      fact("Ended", formatTime(info.end_time)),
      fact("Duration", info.end_time ? formatMs(info.end_time - info.start_time) : "\u2014"),
      info.parent_run_id ? fact("Parent run", h("a", { href: routes.run(info.parent_run_id) }, String(info.parent_run_id))) : null,
    ),
    h(
      "div.tla-kv-grid",
      {},
      kvTable("Parameters", data.params),
      kvTable("Metrics", data.metrics, formatNumber),
      kvTable("Tags", data.tags),
    ),
    h("h2.tla-subtitle", {}, "Traces"),
    traces,
    pager,
  );

  const tokens = [null];
  let index = 0;
  async function loadTraces() {
    let page;
    try {
      page = await api("/traces", {
        query: { experiment_id: experimentId, run_id: runId, max_results: RUN_TRACES_PAGE, page_token: tokens[index], include_spans: "false" },
      });
    } catch (error) {
      if (ctx.active) traces.replaceChildren(errorBox(error));
      return;
    }
    if (!ctx.active) return;
    traces.replaceChildren(traceTable(page.traces.map((t) => t.info), { emptyText: "No traces linked to this run.", onChanged: loadTraces }));
    const prev = h("button.tla-btn", { type: "button", disabled: index === 0, onclick: () => ((index -= 1), loadTraces()) }, "\u2039 Newer");
    const next = h(
      "button.tla-btn",
      { type: "button", disabled: !page.next_page_token, onclick: () => ((tokens[index + 1] = page.next_page_token), (index += 1), loadTraces()) },
      "Older \u203a",
    );
    pager.replaceChildren(h("span.tla-grow"), h("span.tla-muted", {}, `Page ${index + 1}`), prev, next);
  }
  await loadTraces();
}

function runStatus(status) {
  return ["RUNNING", "FINISHED", "FAILED", "KILLED", "SCHEDULED"].includes(status) ? status : "OTHER";
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function formatNumber(value) {
  if (value === null || value === undefined) return "NaN";
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toPrecision(6).replace(/\.?0+$/, "");
}

function kvTable(title, values, format) {
  const entries = Object.entries(values || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return h(
    "section.tla-kv",
    {},
    h("h2.tla-subtitle", {}, `${title} (${entries.length})`),
    entries.length
      ? h(
          "table.tla-table",
          {},
          h("tbody", {}, entries.map(([key, value]) => h("tr", {}, h("th.tla-key", {}, key), h("td.tla-mono", {}, format ? format(value) : String(value))))),
        )
      : h("p.tla-empty", {}, "None."),
  );
}
