/* One trace, drawn by the shared renderer (virtualised span tree, timeline, span
 * detail). The selected span is part of the URL; an in-progress trace refreshes until
 * it ends. */

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

  let shown = "";
  async function load() {
    let trace;
    try {
      trace = (await api("/traces/" + encodeURIComponent(traceId))).trace;
    } catch (error) {
      if (ctx.active) holder.replaceChildren(errorBox(error));
      return false;
    }
    if (!ctx.active) return false;
    const info = trace.info || {};
    const signature = `${info.state}|${info.execution_duration}|${(trace.data && trace.data.spans ? trace.data.spans.length : 0)}`;
    if (signature !== shown) {
      shown = signature;
      renderTrace(holder, trace, {
        selectedSpanId: spanId,
        onSelectSpan: (id) => {
          spanId = id;
          navigate(routes.trace(traceId, id), { silent: true });
        },
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
