/* An experiment's traces: search with the filter language, sort, page, select and
 * delete, edit tags; refreshed every few seconds. Lists never load span bodies
 * (include_spans=false). */

import { api } from "./api.js";
import { confirmButton, costTotal, errorBox, formatMs, formatTime, formatUsd, h, stateBadge, tokenTotal, truncate } from "./dom.js";
import { navigate, routes } from "./router.js";

const PAGE_SIZE = 50;
const POLL_MS = 3000;
const PREVIEW_CHARS = 140;
const ORDERS = { time: "timestamp_ms", duration: "execution_time_ms" };

export async function tracesPage(ctx, experimentId, query) {
  const filter = query.get("filter") || "";
  const order = ORDERS[query.get("order")] ? query.get("order") : "time";
  const dir = query.get("dir") === "asc" ? "asc" : "desc";
  const state = { tokens: [null], index: 0, next: null, selected: new Set(), last: "" };

  ctx.crumbs([["Experiments", routes.experiments()], ["Experiment " + experimentId, null]]);
  api("/experiments/" + encodeURIComponent(experimentId))
    .then((data) => {
      if (!ctx.active) return;
      ctx.crumbs([["Experiments", routes.experiments()], [String(data.experiment.name), null]]);
    })
    .catch(() => {});

  const input = h("input.tla-input.tla-filter", {
    type: "search",
    name: "filter",
    value: filter,
    placeholder: "Filter, e.g. trace.status = 'ERROR' AND tags.env = 'prod'",
    spellcheck: false,
    autocomplete: "off",
  });
  const filterError = h("div.tla-filter-error", { role: "alert", hidden: true });
  const search = h(
    "form.tla-search",
    {
      onsubmit: (event) => {
        event.preventDefault();
        const hash = routes.traces(experimentId, { filter: input.value.trim(), order: order === "time" ? "" : order, dir: dir === "desc" ? "" : dir });
        if (location.hash === hash) load();
        else navigate(hash);
      },
    },
    input,
    h("button.tla-btn.tla-primary", { type: "submit" }, "Search"),
  );
  const selection = h("span.tla-muted");
  const deleteButton = confirmButton(
    "Delete selected",
    () => `Delete ${state.selected.size} trace(s)?`,
    async () => {
      if (!state.selected.size) return;
      try {
        await api("/traces/delete", {
          method: "POST",
          body: { experiment_id: experimentId, trace_ids: [...state.selected] },
        });
        state.selected.clear();
        await load();
      } catch (error) {
        message.replaceChildren(errorBox(error));
      }
    },
  );
  const message = h("div.tla-message");
  const tableHolder = h("div.tla-table-wrap");
  const prev = h("button.tla-btn", { type: "button", onclick: () => turn(-1) }, "\u2039 Newer");
  const next = h("button.tla-btn", { type: "button", onclick: () => turn(1) }, "Older \u203a");
  const pageLabel = h("span.tla-muted");
  if (dir === "asc") {
    prev.textContent = "\u2039 Previous";
    next.textContent = "Next \u203a";
  }

  ctx.main.replaceChildren(
    h(
      "div.tla-toolbar",
      {},
      h("h1.tla-title", {}, "Traces"),
      h("span.tla-grow"),
      h("a.tla-btn", { href: routes.runs(experimentId) }, "Runs"),
    ),
    search,
    filterError,
    h("div.tla-toolbar.tla-actions-bar", {}, selection, deleteButton, h("span.tla-grow"), pageLabel, prev, next),
    message,
    tableHolder,
  );
  updateSelection();

  function updateSelection() {
    selection.textContent = state.selected.size ? `${state.selected.size} selected` : "";
    deleteButton.hidden = state.selected.size === 0;
  }

  function sortBy(key) {
    const newDir = key === order ? (dir === "desc" ? "asc" : "desc") : "desc";
    navigate(routes.traces(experimentId, { filter, order: key === "time" ? "" : key, dir: newDir === "desc" ? "" : newDir }));
  }

  function turn(step) {
    const target = state.index + step;
    if (target < 0 || (step > 0 && !state.next)) return;
    if (step > 0) state.tokens[target] = state.next;
    state.index = target;
    load();
  }

  async function load({ poll = false } = {}) {
    let data;
    try {
      data = await api("/traces", {
        query: {
          experiment_id: experimentId,
          filter_string: filter,
          order_by: `${ORDERS[order]} ${dir.toUpperCase()}`,
          max_results: PAGE_SIZE,
          page_token: state.tokens[state.index],
          include_spans: "false",
        },
      });
    } catch (error) {
      if (!ctx.active) return;
      if (error.status === 400) {
        filterError.replaceChildren(h("strong", {}, "Filter error: "), error.message);
        filterError.hidden = false;
        input.setAttribute("aria-invalid", "true");
        tableHolder.replaceChildren();
      } else if (!poll) {
        message.replaceChildren(errorBox(error));
      }
      return;
    }
    if (!ctx.active) return;
    filterError.hidden = true;
    input.removeAttribute("aria-invalid");
    if (!poll) message.replaceChildren();
    const infos = data.traces.map((t) => t.info);
    state.next = data.next_page_token;
    prev.disabled = state.index === 0;
    next.disabled = !state.next;
    pageLabel.textContent = `Page ${state.index + 1}`;
    const running = infos.filter((i) => i.state === "IN_PROGRESS").length;
    ctx.live(running ? `live \u00b7 ${running} in progress` : "live");
    const signature = JSON.stringify(infos);
    if (poll && signature === state.last) return;
    state.last = signature;
    const visible = new Set(infos.map((i) => i.trace_id));
    for (const id of [...state.selected]) if (!visible.has(id)) state.selected.delete(id);
    updateSelection();
    tableHolder.replaceChildren(
      traceTable(infos, {
        selected: state.selected,
        onSelect: updateSelection,
        onChanged: () => load(),
        onError: (error) => message.replaceChildren(errorBox(error)),
        sort: { order, dir, sortBy },
        emptyText: filter ? "No trace matches this filter." : "No traces in this experiment yet.",
      }),
    );
  }

  await load();
  // New and in-progress traces: poll, unless the user is typing in the table (a tag).
  ctx.every(POLL_MS, () => (tableHolder.contains(document.activeElement) ? null : load({ poll: true })));
}

/** The trace table (also used on a run's page); ``options.selected`` is a Set of ids. */
export function traceTable(infos, options) {
  const { selected, onSelect, sort } = options;
  if (!infos.length) return h("p.tla-empty", {}, options.emptyText || "No traces.");
  const all = h("input", { type: "checkbox", title: "Select all on this page", "aria-label": "Select all" });
  all.checked = selected && infos.every((i) => selected.has(i.trace_id));
  const boxes = [];
  all.addEventListener("change", () => {
    for (const [box, id] of boxes) {
      box.checked = all.checked;
      if (all.checked) selected.add(id);
      else selected.delete(id);
    }
    if (onSelect) onSelect();
  });
  const header = (label, key, numeric) => {
    if (!sort) return h(numeric ? "th.tla-num" : "th", {}, label);
    const mark = sort.order === key ? (sort.dir === "desc" ? " \u2193" : " \u2191") : "";
    return h("th.tla-sortable" + (numeric ? ".tla-num" : ""), {}, h("button.tla-sort", { type: "button", onclick: () => sort.sortBy(key) }, label + mark));
  };
  const head = h(
    "tr",
    {},
    selected ? h("th.tla-check", {}, all) : null,
    h("th", {}, "Trace"),
    h("th", {}, "Name"),
    h("th", {}, "Request"),
    h("th", {}, "Response"),
    h("th", {}, "Status"),
    header("Duration", "duration", true),
    h("th.tla-num", {}, "Tokens"),
    h("th.tla-num", {}, "Cost"),
    h("th", {}, "Run"),
    h("th", {}, "Tags"),
    header("Time", "time"),
  );
  const rows = infos.map((info) => {
    const id = String(info.trace_id);
    let box = null;
    if (selected) {
      box = h("input", { type: "checkbox", "aria-label": "Select " + id });
      box.checked = selected.has(id);
      box.addEventListener("change", () => {
        if (box.checked) selected.add(id);
        else selected.delete(id);
        all.checked = infos.every((i) => selected.has(i.trace_id));
        if (onSelect) onSelect();
      });
      boxes.push([box, id]);
    }
    const runId = info.trace_metadata ? info.trace_metadata.run_id : null;
    const tokens = tokenTotal(info);
    const cost = costTotal(info);
    return h(
      "tr.tla-trace-row",
      { dataset: { traceId: id } },
      selected ? h("td.tla-check", {}, box) : null,
      h("td.tla-mono", {}, h("a.tla-trace-link", { href: routes.trace(id), title: id }, shortId(id))),
      h("td.tla-name-cell", {}, h("a", { href: routes.trace(id) }, info.name === null || info.name === undefined ? "(unnamed)" : String(info.name))),
      preview(info.request_preview),
      preview(info.response_preview),
      h("td", {}, stateBadge(info.state)),
      h("td.tla-num", {}, info.state === "IN_PROGRESS" ? "\u2026" : formatMs(info.execution_duration)),
      h("td.tla-num", {}, tokens === null ? "\u2014" : tokens.toLocaleString()),
      h("td.tla-num.tla-cost", {}, cost === null ? "\u2014" : formatUsd(cost)),
      h("td.tla-mono", {}, runId ? h("a", { href: routes.run(runId), title: String(runId) }, String(runId).slice(0, 8)) : "\u2014"),
      tagsCell(info, options),
      h("td.tla-time", {}, formatTime(info.request_time)),
    );
  });
  return h("table.tla-table.tla-traces", {}, h("thead", {}, head), h("tbody", {}, rows));
}

function shortId(id) {
  const bare = id.startsWith("tr-") ? id.slice(3) : id;
  return bare.slice(0, 10);
}

function preview(text) {
  const value = text === null || text === undefined ? "" : String(text);
  return h("td.tla-preview", { title: truncate(value, 2000) }, truncate(value, PREVIEW_CHARS));
}

/** Tag chips with a remove button each, and a "+" that opens an inline key=value form. */
function tagsCell(info, options) {
  const id = String(info.trace_id);
  const cell = h("td.tla-tags");
  const path = "/traces/" + encodeURIComponent(id) + "/tags";
  const change = async (request) => {
    try {
      await request();
      if (options.onChanged) await options.onChanged();
    } catch (error) {
      if (options.onError) options.onError(error);
    }
  };
  for (const [key, value] of Object.entries(info.tags || {})) {
    const remove = h("button.tla-chip-x", { type: "button", title: "Remove tag " + key, "aria-label": "Remove tag " + key }, "\u00d7");
    remove.addEventListener("click", () => change(() => api(path, { method: "DELETE", query: { key } })));
    cell.append(h("span.tla-chip", { title: `${key}=${value}` }, truncate(`${key}=${value}`, 40), remove));
  }
  const add = h("button.tla-chip-add", { type: "button", title: "Add a tag", "aria-label": "Add a tag" }, "+ tag");
  add.addEventListener("click", () => {
    const input = h("input.tla-input.tla-tag-input", { type: "text", placeholder: "key=value", name: "tag" });
    const form = h(
      "form.tla-inline",
      {
        onsubmit: (event) => {
          event.preventDefault();
          const text = input.value;
          const at = text.indexOf("=");
          const key = (at < 0 ? text : text.slice(0, at)).trim();
          if (!key) return;
          const value = at < 0 ? "" : text.slice(at + 1).trim();
          change(() => api(path, { method: "POST", body: { key, value } }));
        },
      },
      input,
    );
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") form.replaceWith(add);
    });
    add.replaceWith(form);
    input.focus();
  });
  cell.append(add);
  return cell;
}
