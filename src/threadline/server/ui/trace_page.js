/* One trace, drawn by the shared renderer (virtualised span tree, timeline, span
 * detail). The page loads the trace's structure (spans without payloads), so the tree
 * and timeline of a large trace draw at once; a span's inputs, outputs, attributes and
 * events are fetched when it is selected, and kept. The selected span is part of the URL;
 * an in-progress trace refreshes until it ends. */

import { api } from "./api.js";
import { errorBox, h } from "./dom.js";
import { navigate, routes } from "./router.js";
import { renderTrace } from "./trace_view.js";

const POLL_MS = 2000;

export async function tracePage(ctx, traceId, query) {
  let spanId = query.get("span") || undefined;
  ctx.crumbs([["Experiments", routes.experiments()], [traceId, null]]);
  const status = h("div.tla-message");
  const holder = h("div.tla-trace", {}, h("p.tla-muted", {}, "Loading trace\u2026"));
  ctx.main.replaceChildren(status, holder);
  const loadSpan = spanLoader(traceId);

  let shown = "";
  async function load() {
    let trace;
    try {
      trace = (await api("/traces/" + encodeURIComponent(traceId) + "/structure")).trace;
    } catch (error) {
      if (ctx.active) holder.replaceChildren(errorBox(error));
      return false;
    }
    if (!ctx.active) return false;
    const info = trace.info || {};
    const spans = trace.data && trace.data.spans ? trace.data.spans : [];
    const ended = spans.filter((span) => span.end_time_ns !== null && span.end_time_ns !== undefined).length;
    const signature = `${info.state}|${info.execution_duration}|${spans.length}|${ended}`;
    if (signature !== shown) {
      shown = signature;
      renderTrace(holder, trace, {
        selectedSpanId: spanId,
        onSelectSpan: (id) => {
          spanId = id;
          navigate(routes.trace(traceId, id), { silent: true });
        },
        loadSpan,
      });
    }
    const experimentId = String(info.experiment_id);
    crumbs(experimentId, info);
    const running = info.state === "IN_PROGRESS";
    ctx.live(running ? "live \u00b7 in progress" : "");
    return running;
  }

  let named = null;
  function crumbs(experimentId, info) {
    const label = info.name ? String(info.name) : traceId;
    const experimentLabel = named || "Experiment " + experimentId;
    ctx.crumbs([
      ["Experiments", routes.experiments()],
      [experimentLabel, routes.traces(experimentId)],
      [label, null],
    ]);
    if (named === null) {
      named = "";
      api("/experiments/" + encodeURIComponent(experimentId))
        .then((data) => {
          named = String(data.experiment.name);
          if (ctx.active) crumbs(experimentId, info);
        })
        .catch(() => {});
    }
  }

  if (await load()) {
    const stop = ctx.every(POLL_MS, async () => {
      if (!(await load())) stop();
    });
  }
}

/**
 * ``loadSpan`` for the renderer: a span's payloads from the API, fetched once. A loaded
 * span comes back as it is (no loading flash when the view redraws); a failed load is
 * forgotten, so the renderer's retry asks again. The key includes the end time and status,
 * so a span of an in-progress trace is fetched again once it has ended.
 */
function spanLoader(traceId) {
  const cache = new Map();
  return (span) => {
    const key = `${span.span_id}|${span.end_time_ns}|${span.status ? span.status.code : ""}`;
    const cached = cache.get(key);
    if (cached) return cached.span || cached.promise;
    const entry = { span: null, promise: null };
    const path = "/traces/" + encodeURIComponent(traceId) + "/spans/" + encodeURIComponent(String(span.span_id));
    entry.promise = api(path).then(
      (data) => {
        entry.span = data.span;
        return data.span;
      },
      (error) => {
        cache.delete(key);
        throw error;
      },
    );
    cache.set(key, entry);
    return entry.promise;
  };
}
