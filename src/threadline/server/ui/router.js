/* Hash routes: every view has a URL, so deep links and the back button work.
 *   #/experiments                                  experiments
 *   #/experiments/<id>?filter=…&order=…&dir=…      an experiment's traces
 *   #/experiments/<id>/runs                        an experiment's runs
 *   #/runs/<id>                                    a run and its traces
 *   #/traces/<id>?span=<span id>                   a trace (and a selected span)
 */

export function parseHash(hash) {
  const raw = (hash || "").replace(/^#\/?/, "");
  const [pathPart, queryPart] = splitOnce(raw, "?");
  const path = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { path, query: new URLSearchParams(queryPart || "") };
}

function splitOnce(text, sep) {
  const at = text.indexOf(sep);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
}

/** A hash for ``parts`` (each encoded) and optional query values (empty ones left out). */
export function hashFor(parts, query) {
  const path = parts.map((p) => encodeURIComponent(String(p))).join("/");
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const q = params.toString();
  return "#/" + path + (q ? "?" + q : "");
}

export const routes = {
  experiments: () => hashFor(["experiments"]),
  traces: (experimentId, query) => hashFor(["experiments", experimentId], query),
  runs: (experimentId) => hashFor(["experiments", experimentId, "runs"]),
  run: (runId) => hashFor(["runs", runId]),
  trace: (traceId, spanId) => hashFor(["traces", traceId], { span: spanId }),
};

/** Goes to ``hash``: a new history entry, or (``replace``) the current one rewritten. */
export function navigate(hash, { replace = false, silent = false } = {}) {
  if (location.hash === hash) return;
  if (replace || silent) {
    history.replaceState(null, "", hash);
    if (!silent) window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}
