/* The experiments page: each experiment with its trace count, error rate and last
 * activity; create, rename and delete. */

import { api, forgetExperimentNames } from "./api.js";
import { confirmButton, errorBox, formatAgo, formatTime, h } from "./dom.js";
import { routes } from "./router.js";

export async function experimentsPage(ctx) {
  ctx.crumbs([["Experiments", null]]);
  const message = h("div.tla-message");
  const body = h("div");
  const name = h("input.tla-input", { type: "text", placeholder: "New experiment name", name: "name", maxLength: 256 });
  const form = h(
    "form.tla-toolbar",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        const value = name.value.trim();
        if (!value) return;
        try {
          await api("/experiments", { method: "POST", body: { name: value } });
          name.value = "";
          message.replaceChildren();
          await load();
        } catch (error) {
          message.replaceChildren(errorBox(error));
        }
      },
    },
    h("h1.tla-title", {}, "Experiments"),
    h("span.tla-grow"),
    name,
    h("button.tla-btn.tla-primary", { type: "submit" }, "Create"),
  );
  ctx.main.replaceChildren(form, message, body);

  async function load() {
    let experiments;
    let stats;
    try {
      const [list, summary] = await Promise.all([
        api("/experiments", { query: { max_results: 1000 } }),
        api("/stats/experiments"),
      ]);
      experiments = list.experiments;
      stats = new Map(summary.stats.map((s) => [String(s.experiment_id), s]));
    } catch (error) {
      if (ctx.active) body.replaceChildren(errorBox(error));
      return;
    }
    if (!ctx.active) return;
    body.replaceChildren(table(experiments, stats));
  }

  function table(experiments, stats) {
    if (!experiments.length) return h("p.tla-empty", {}, "No experiments yet.");
    const rows = experiments.map((experiment) => row(experiment, stats.get(String(experiment.experiment_id))));
    return h(
      "table.tla-table.tla-experiments",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Name", "ID", "Traces", "Errors", "In progress", "Last activity", "Created", ""].map((t, i) =>
            h(i >= 2 && i <= 4 ? "th.tla-num" : "th", {}, t),
          ),
        ),
      ),
      h("tbody", {}, rows),
    );
  }

  function row(experiment, stat) {
    const id = String(experiment.experiment_id);
    const count = stat ? stat.trace_count : 0;
    const rate = stat && stat.error_rate !== null ? stat.error_rate : null;
    const nameCell = h(
      "td.tla-name-cell",
      {},
      h("a.tla-strong", { href: routes.traces(id) }, String(experiment.name)),
    );
    const rename = h("button.tla-btn", { type: "button" }, "Rename");
    rename.addEventListener("click", () => editName(nameCell, experiment));
    const actions = h(
      "td.tla-actions",
      {},
      h("a.tla-btn", { href: routes.runs(id) }, "Runs"),
      rename,
      confirmButton("Delete", "Really delete?", async () => {
        try {
          await api("/experiments/" + encodeURIComponent(id), { method: "DELETE" });
          await load();
        } catch (error) {
          message.replaceChildren(errorBox(error));
        }
      }),
    );
    const errors = rate === null ? "\u2014" : `${(rate * 100).toFixed(rate > 0 && rate < 0.01 ? 1 : 0)}% (${stat.error_count})`;
    return h(
      "tr",
      { dataset: { experimentId: id } },
      nameCell,
      h("td.tla-mono.tla-muted", {}, id),
      h("td.tla-num", {}, String(count)),
      h("td.tla-num" + (rate ? ".tla-bad" : ""), {}, errors),
      h("td.tla-num", {}, stat && stat.in_progress_count ? String(stat.in_progress_count) : "\u2014"),
      h("td", { title: stat ? formatTime(stat.last_activity_ms) : "" }, stat ? formatAgo(stat.last_activity_ms) : "\u2014"),
      h("td.tla-muted", {}, formatTime(experiment.creation_time)),
      actions,
    );
  }

  function editName(cell, experiment) {
    const input = h("input.tla-input", { type: "text", value: String(experiment.name), maxLength: 256 });
    const cancel = h("button.tla-btn", { type: "button", onclick: () => load() }, "Cancel");
    const form = h(
      "form.tla-inline",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            await api("/experiments/" + encodeURIComponent(experiment.experiment_id), {
              method: "PATCH",
              body: { new_name: input.value.trim() },
            });
            forgetExperimentNames();
            message.replaceChildren();
            await load();
          } catch (error) {
            message.replaceChildren(errorBox(error));
          }
        },
      },
      input,
      h("button.tla-btn.tla-primary", { type: "submit" }, "Save"),
      cancel,
    );
    cell.replaceChildren(form);
    input.focus();
    input.select();
  }

  await load();
  // Refresh, but never under a rename the user is typing.
  ctx.every(10000, () => (body.contains(document.activeElement) ? null : load()));
}
