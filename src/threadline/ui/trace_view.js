/* threadline trace view: draws one trace (or a list of traces) from its JSON form,
 * Trace.to_dict(): {"info": {...}, "data": {"spans": [...]}}.
 *
 *   import { renderTrace, renderTraceList } from "./trace_view.js";  // plus trace_view.css
 *   renderTrace(container, traceJson, { selectedSpanId, onSelectSpan, loadSpan });
 *
 * Spans carry their payloads (inputs, outputs, events, every attribute) inline, as in the
 * notebook, or, when ``loadSpan(span)`` is given, only their structure (as the web UI's
 * /traces/{id}/structure returns it): the tree and timeline draw at once, and the selected
 * span's payloads come from ``loadSpan``, which returns the whole span or a Promise of it.
 *
 * The web UI loads this file as an ES module under a strict Content-Security-Policy; the
 * notebook display inlines it as a classic script (its one export line removed). Rules
 * that keep untrusted trace data (LLM output) inert:
 *   - every value from a trace reaches the page through textContent or a DOM property;
 *   - elements are made with createElement: no innerHTML, eval, new Function, inline
 *     event handlers or style attributes (styles are set through element.style);
 *   - class names and tags never come from trace data; no links or images are made
 *     from it.
 * The span list is virtualised (only the rows in view are in the DOM), and JSON trees
 * build their children when opened, so traces with tens of thousands of spans open fast.
 */

const ROW_HEIGHT = 26; // px; must match .tl-row in trace_view.css
const OVERSCAN = 10; // rows drawn above and below the visible ones
const INDENT_PX = 14;
const MAX_INDENT_LEVELS = 32;
const JSON_PAGE = 100; // object/array entries shown before a "show more" button
const LONG_STRING = 3000; // characters shown before a "show all" button
const JSON_OPEN_MAX = 50; // entries above which a JSON node starts closed

// Non-ASCII characters as escapes: the file stays ASCII, whatever encoding the page has.
const DASH = "\u2014";
const DOT = " \u00b7 ";
const ELLIPSIS = "\u2026";
const MICRO = "\u00b5";
const OPEN = "\u25be";
const CLOSED = "\u25b8";

const TYPE_LABELS = new Map([
  ["LLM", "LLM"],
  ["CHAT_MODEL", "CHAT"],
  ["AGENT", "AGENT"],
  ["CHAIN", "CHAIN"],
  ["TOOL", "TOOL"],
  ["RETRIEVER", "RETR"],
  ["EMBEDDING", "EMBED"],
  ["RERANKER", "RERANK"],
  ["PARSER", "PARSER"],
  ["MEMORY", "MEMORY"],
  ["UNKNOWN", "SPAN"],
]);
const CHAT_TYPES = new Set(["LLM", "CHAT_MODEL"]);
const STATES = new Set(["OK", "ERROR", "IN_PROGRESS", "UNSET"]);
const ROLES = new Set(["system", "developer", "user", "assistant", "tool", "function"]);
const CHAT_MESSAGES = "threadline.chat.messages";
const CHAT_TOOLS = "threadline.chat.tools";
const TOKEN_USAGE = "threadline.token_usage";
const MODEL = "threadline.model";
const COST = "threadline.llm.cost";

// ---------------------------------------------------------------- small helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text === null ? "" : String(text);
  return node;
}

function button(className, text, onClick) {
  const node = el("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function toNumber(value) {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN;
  return Number.isFinite(n) ? n : null;
}

/** A string holding a JSON object or array is parsed; anything else comes back as is. */
function parseMaybeJson(value) {
  if (typeof value !== "string") return value;
  const text = value.trim();
  if (!(text.startsWith("{") || text.startsWith("["))) return value;
  try {
    return JSON.parse(text);
  } catch (_error) {
    return value;
  }
}

function plural(n, word) {
  return n + " " + word + (n === 1 ? "" : "s");
}

function formatDuration(ns) {
  if (ns === null || ns === undefined || !Number.isFinite(ns)) return DASH;
  const v = Math.max(ns, 0);
  if (v < 1e3) return Math.round(v) + " ns";
  if (v < 1e6) return (v / 1e3).toFixed(v < 1e4 ? 1 : 0) + " " + MICRO + "s";
  if (v < 1e9) return (v / 1e6).toFixed(v < 1e7 ? 2 : v < 1e8 ? 1 : 0) + " ms";
  if (v < 60e9) return (v / 1e9).toFixed(2) + " s";
  const s = Math.round(v / 1e9);
  return Math.floor(s / 60) + " min " + (s % 60) + " s";
}

function formatTime(ms) {
  const n = toNumber(ms);
  if (n === null) return DASH;
  const d = new Date(n);
  if (Number.isNaN(d.getTime())) return DASH;
  const p = (x) => String(x).padStart(2, "0");
  return (
    d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
    p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds())
  );
}

function tokenText(usage) {
  const u = parseMaybeJson(usage);
  if (!isObject(u)) return null;
  const parts = [];
  const input = toNumber(u.input_tokens);
  const output = toNumber(u.output_tokens);
  const total = toNumber(u.total_tokens);
  if (input !== null) parts.push(input + " in");
  if (output !== null) parts.push(output + " out");
  if (total !== null) parts.push(total + " total");
  return parts.length ? parts.join(DOT) : null;
}

/** US dollars with four significant digits, never in exponent form ("$0.00045", "$1.20"). */
function formatUsd(value) {
  const v = toNumber(value);
  if (v === null || v < 0) return null;
  if (v === 0) return "$0.00";
  const decimals = Math.min(12, Math.max(2, 3 - Math.floor(Math.log10(v))));
  let text = v.toFixed(decimals);
  if (text.includes(".")) {
    text = text.replace(/0+$/, "");
    const places = text.length - text.indexOf(".") - 1;
    if (places < 2) text += "0".repeat(2 - places);
  }
  return "$" + text;
}

/** The total of a cost ({input_cost, output_cost, total_cost}, or its JSON text) and its parts. */
function costParts(cost) {
  const c = parseMaybeJson(cost);
  if (!isObject(c)) return null;
  const total = formatUsd(c.total_cost);
  if (total === null) return null;
  const input = formatUsd(c.input_cost);
  const output = formatUsd(c.output_cost);
  const parts = [];
  if (input !== null) parts.push("input " + input);
  if (output !== null) parts.push("output " + output);
  return { total, detail: parts.join(DOT) };
}

function typeClass(type) {
  return "tl-type-" + (TYPE_LABELS.has(type) ? type : "OTHER");
}

function typeLabel(type) {
  if (TYPE_LABELS.has(type)) return TYPE_LABELS.get(type);
  const text = type === null || type === undefined ? "SPAN" : String(type);
  return text.length > 7 ? text.slice(0, 6) + ELLIPSIS : text;
}

function badge(type) {
  const node = el("span", "tl-badge " + typeClass(type), typeLabel(type));
  node.title = type === null || type === undefined ? "" : String(type);
  return node;
}

function stateClass(state) {
  return "tl-state-" + (STATES.has(state) ? state : "OTHER");
}

function spanName(span) {
  return span.name === null || span.name === undefined ? "(unnamed)" : String(span.name);
}

function spanStatus(span) {
  const status = isObject(span.status) ? span.status : {};
  return {
    code: typeof status.code === "string" ? status.code : "UNSET",
    message: status.message ? String(status.message) : "",
  };
}

// ---------------------------------------------------------------- the span tree model

/** Nodes for every span, placed in a tree (children by start time) and timed on one axis. */
function buildModel(trace) {
  const info = isObject(trace) && isObject(trace.info) ? trace.info : {};
  const data = isObject(trace) && isObject(trace.data) ? trace.data : {};
  const spans = Array.isArray(data.spans) ? data.spans : [];
  const nodes = [];
  for (const span of spans) {
    if (!isObject(span)) continue;
    const start = toNumber(span.start_time_ns);
    nodes.push({
      span,
      start: start === null ? 0 : start,
      end: toNumber(span.end_time_ns),
      kids: [],
      parent: null,
      depth: 0,
      expanded: true,
    });
  }
  const roots = placeNodes(nodes);
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const node of nodes) {
    t0 = Math.min(t0, node.start);
    t1 = Math.max(t1, node.end === null ? node.start : node.end);
  }
  if (!Number.isFinite(t0)) {
    t0 = 0;
    t1 = 0;
  }
  return { info, nodes, roots, t0, total: Math.max(t1 - t0, 1) };
}

/** Links each node under its parent (orphans become roots; cycles in bad data are cut). */
function placeNodes(nodes) {
  const byId = new Map();
  for (const node of nodes) {
    const id = node.span.span_id;
    if (id !== null && id !== undefined && !byId.has(String(id))) byId.set(String(id), node);
  }
  const children = new Map();
  const roots = [];
  for (const node of nodes) {
    const parentId = node.span.parent_id;
    const parent = parentId === null || parentId === undefined ? undefined : byId.get(String(parentId));
    if (parent && parent !== node) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(node);
    } else {
      roots.push(node);
    }
  }
  const byStart = (a, b) => a.start - b.start;
  roots.sort(byStart);
  const placed = new Set();
  const visit = (top) => {
    placed.add(top);
    const stack = [top];
    while (stack.length) {
      const node = stack.pop();
      const kids = (children.get(node) || []).filter((kid) => !placed.has(kid)).sort(byStart);
      for (const kid of kids) {
        placed.add(kid);
        kid.parent = node;
        kid.depth = node.depth + 1;
      }
      node.kids = kids;
      for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
    }
  };
  for (const root of roots.slice()) visit(root);
  for (const node of nodes) {
    if (!placed.has(node)) {
      roots.push(node);
      visit(node);
    }
  }
  return roots;
}

/** The rows currently shown: a depth-first walk that skips collapsed subtrees. */
function flatten(roots) {
  const rows = [];
  const stack = roots.slice().reverse();
  while (stack.length) {
    const node = stack.pop();
    rows.push(node);
    if (node.expanded) for (let i = node.kids.length - 1; i >= 0; i--) stack.push(node.kids[i]);
  }
  return rows;
}

// ---------------------------------------------------------------- values as text and trees

/** A value in the detail pane: text for strings, a collapsible tree for objects/arrays. */
function valueView(value, emptyText, openDepth) {
  if (value === undefined || value === null) return el("div", "tl-empty", emptyText);
  if (typeof value === "string") return longText("div", "tl-text", value);
  if (typeof value !== "object") return el("div", "tl-text", String(value));
  return jsonTree(value, openDepth === undefined ? 2 : openDepth);
}

/** Text cut at LONG_STRING characters, with a button that shows the rest. */
function longText(tag, className, text) {
  const node = el(tag, className);
  if (text.length <= LONG_STRING) {
    node.textContent = text;
    return node;
  }
  const shown = el("span", "", text.slice(0, LONG_STRING) + ELLIPSIS);
  const more = button("tl-more", "Show all " + text.length + " characters", () => {
    shown.textContent = text;
    more.remove();
  });
  node.append(shown, more);
  return node;
}

function jsonTree(value, openDepth) {
  const root = el("div", "tl-json");
  appendEntries(root, value, 0, openDepth);
  return root;
}

function entriesOf(value) {
  return Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.keys(value).map((k) => [k, value[k]]);
}

/** Adds the entries of an object/array to ``parent``, JSON_PAGE at a time. */
function appendEntries(parent, value, depth, openDepth) {
  const entries = entriesOf(value);
  const isArray = Array.isArray(value);
  if (!entries.length) {
    parent.append(el("span", "tl-json-null", isArray ? "[]" : "{}"));
    return;
  }
  let shown = 0;
  const more = () => {
    const end = Math.min(entries.length, shown + JSON_PAGE);
    const frag = document.createDocumentFragment();
    for (; shown < end; shown++) {
      frag.append(jsonEntry(entries[shown][0], entries[shown][1], depth, openDepth, isArray));
    }
    parent.append(frag);
    const left = entries.length - shown;
    if (left > 0) {
      const next = button("tl-more", "Show " + Math.min(JSON_PAGE, left) + " more of " + left, () => {
        next.remove();
        more();
      });
      parent.append(next);
    }
  };
  more();
}

function jsonEntry(key, value, depth, openDepth, isIndex) {
  const keyNode = el("span", isIndex ? "tl-json-index" : "tl-json-key", key);
  if (value === null || typeof value !== "object") {
    const leaf = el("div", "tl-json-leaf");
    leaf.append(keyNode, scalarView(value));
    return leaf;
  }
  const size = Array.isArray(value) ? value.length : Object.keys(value).length;
  const node = el("details", "tl-json-node");
  const summary = el("summary", "tl-json-summary");
  const preview = Array.isArray(value) ? "[" + plural(size, "item") + "]" : "{" + plural(size, "key") + "}";
  summary.append(keyNode, el("span", "tl-json-preview", preview));
  const body = el("div", "tl-json-children");
  node.append(summary, body);
  let filled = false;
  const fill = () => {
    if (filled) return;
    filled = true;
    appendEntries(body, value, depth + 1, openDepth);
  };
  node.addEventListener("toggle", () => {
    if (node.open) fill();
  });
  if (depth + 1 < openDepth && size <= JSON_OPEN_MAX) {
    fill();
    node.open = true;
  }
  return node;
}

function scalarView(value) {
  if (typeof value === "string") return longText("span", "tl-json-str", value);
  if (value === null || value === undefined) return el("span", "tl-json-null", "null");
  if (typeof value === "number") return el("span", "tl-json-num", String(value));
  if (typeof value === "boolean") return el("span", "tl-json-bool", String(value));
  return el("span", "tl-json-str", String(value));
}

// ---------------------------------------------------------------- chat messages

/** The conversation of an LLM span: the normalised attribute, else OpenAI-style I/O. */
function chatMessages(span) {
  const attributes = isObject(span.attributes) ? span.attributes : {};
  const normalised = parseMaybeJson(attributes[CHAT_MESSAGES]);
  if (Array.isArray(normalised) && normalised.length) return normalised;
  const inputs = parseMaybeJson(span.inputs);
  const given = isObject(inputs) ? parseMaybeJson(inputs.messages) : null;
  if (!Array.isArray(given)) return null;
  const reply = replyMessage(span.outputs);
  return reply ? given.concat([reply]) : given.slice();
}

function replyMessage(outputs) {
  const out = parseMaybeJson(outputs);
  if (typeof out === "string") return { role: "assistant", content: out };
  if (!isObject(out)) return null;
  const choice = Array.isArray(out.choices) ? out.choices[0] : null;
  if (isObject(choice) && isObject(choice.message)) return choice.message;
  if (typeof out.role === "string" && "content" in out) return out; // Anthropic-style message
  return null;
}

function chatView(messages, tools) {
  const box = el("div", "tl-chat");
  const offered = parseMaybeJson(tools);
  if (Array.isArray(offered) && offered.length) box.append(toolsView(offered));
  for (const message of messages) box.append(messageView(message));
  return box;
}

function toolsView(tools) {
  const node = el("details", "tl-tools");
  node.append(el("summary", "tl-tools-title", "Tools offered (" + tools.length + ")"));
  for (const tool of tools) {
    const item = el("div", "tl-tool-def");
    const fn = isObject(tool) && isObject(tool.function) ? tool.function : tool;
    if (!isObject(fn)) {
      item.append(valueView(fn, ""));
    } else {
      item.append(el("span", "tl-tool-name", fn.name === undefined ? "(tool)" : String(fn.name)));
      if (fn.description) item.append(el("span", "tl-tool-desc", String(fn.description)));
      if (fn.parameters !== undefined) item.append(valueView(parseMaybeJson(fn.parameters), "", 0));
    }
    node.append(item);
  }
  return node;
}

function messageView(message) {
  if (!isObject(message)) return valueView(message, "(empty message)");
  const role = typeof message.role === "string" ? message.role : "message";
  const box = el("div", "tl-msg tl-role-" + (ROLES.has(role) ? role : "other"));
  const head = el("div", "tl-msg-head");
  head.append(el("span", "tl-msg-role", role));
  if (message.name !== undefined && message.name !== null) {
    head.append(el("span", "tl-msg-sub", String(message.name)));
  }
  if (message.tool_call_id !== undefined && message.tool_call_id !== null) {
    head.append(el("span", "tl-msg-sub", "result of " + String(message.tool_call_id)));
  }
  box.append(head);
  const content = message.content;
  if (content !== undefined && content !== null && content !== "") box.append(contentView(content));
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  for (const call of calls) box.append(toolCallView(call));
  if (isObject(message.function_call)) box.append(toolCallView({ function: message.function_call }));
  return box;
}

function contentView(content) {
  if (typeof content === "string") return longText("div", "tl-msg-text", content);
  if (!Array.isArray(content)) return valueView(content, "");
  const box = el("div", "tl-msg-parts");
  for (const part of content) box.append(partView(part));
  return box;
}

function partView(part) {
  if (typeof part === "string") return longText("div", "tl-msg-text", part);
  if (!isObject(part)) return valueView(part, "");
  const type = part.type;
  if (typeof part.text === "string" && (type === "text" || type === "input_text" || type === "output_text")) {
    return longText("div", "tl-msg-text", part.text);
  }
  if (type === "tool_use") {
    return toolCallView({ id: part.id, function: { name: part.name, arguments: part.input } });
  }
  if (type === "tool_result") {
    const box = el("div", "tl-tool-result");
    box.append(el("div", "tl-tool-head", "Tool result" + (part.tool_use_id ? DOT + part.tool_use_id : "")));
    if (part.content !== undefined && part.content !== null) box.append(contentView(part.content));
    return box;
  }
  if (type === "image_url" || type === "image" || type === "input_image") {
    return el("div", "tl-msg-media", "[image] " + mediaSource(part));
  }
  return valueView(part, "");
}

/** Where an image part comes from, as short text (images themselves are never loaded). */
function mediaSource(part) {
  const ref = isObject(part.image_url) ? part.image_url.url : part.image_url || (isObject(part.source) ? part.source.url || part.source.type : part.url);
  if (typeof ref !== "string" || !ref) return "(inline data)";
  if (ref.startsWith("data:")) return "(inline " + ref.slice(5, ref.indexOf(";") > 0 ? ref.indexOf(";") : 30) + " data)";
  return ref.length > 120 ? ref.slice(0, 117) + ELLIPSIS : ref;
}

function toolCallView(call) {
  const safe = isObject(call) ? call : {};
  const fn = isObject(safe.function) ? safe.function : safe;
  const box = el("div", "tl-tool-call");
  const head = el("div", "tl-tool-head");
  head.append(el("span", "tl-tool-label", "Tool call"), el("span", "tl-tool-name", fn.name === undefined ? "(tool)" : String(fn.name)));
  if (safe.id !== undefined && safe.id !== null) head.append(el("span", "tl-msg-sub", String(safe.id)));
  box.append(head);
  const args = parseMaybeJson(fn.arguments);
  if (args !== undefined && args !== null && args !== "") box.append(valueView(args, ""));
  return box;
}

// ---------------------------------------------------------------- header and span detail

function metaItem(parent, label, value, className) {
  if (value === null || value === undefined || value === "") return null;
  const item = el("span", "tl-meta-item" + (className ? " " + className : ""));
  item.append(el("span", "tl-meta-label", label), el("span", "tl-meta-value", value));
  parent.append(item);
  return item;
}

/** "Cost $0.00045", its input and output parts as the tooltip. */
function costItem(parent, cost) {
  const parts = costParts(cost);
  if (!parts) return;
  const item = metaItem(parent, "Cost", parts.total, "tl-cost");
  if (item && parts.detail) item.title = parts.detail;
}

function headerView(model) {
  const info = model.info;
  const root = model.roots[0];
  const name = info.name || (root ? spanName(root.span) : "") || info.trace_id || "Trace";
  const state = typeof info.state === "string" ? info.state : "UNKNOWN";
  const header = el("div", "tl-header");
  const title = el("div", "tl-title-row");
  title.append(el("span", "tl-title", name), el("span", "tl-state " + stateClass(state), state));
  header.append(title);
  const meta = el("div", "tl-meta");
  // The root span's duration is in ns; the trace's execution_duration only in whole ms.
  const ms = toNumber(info.execution_duration);
  const rootNs = root && root.end !== null ? root.end - root.start : null;
  metaItem(meta, "Duration", formatDuration(rootNs !== null ? rootNs : ms === null ? null : ms * 1e6));
  metaItem(meta, "Started", formatTime(info.request_time));
  const metadata = isObject(info.trace_metadata) ? info.trace_metadata : {};
  metaItem(meta, "Tokens", tokenText(metadata.token_usage));
  costItem(meta, metadata.cost);
  metaItem(meta, "Spans", String(model.nodes.length));
  metaItem(meta, "Trace ID", info.trace_id ? String(info.trace_id) : null, "tl-mono");
  header.append(meta);
  const tags = isObject(info.tags) ? Object.keys(info.tags) : [];
  if (tags.length) {
    const row = el("div", "tl-tags");
    for (const key of tags) row.append(el("span", "tl-tag", key + ": " + String(info.tags[key])));
    header.append(row);
  }
  return header;
}

function section(title, content, open) {
  const node = el("details", "tl-section");
  node.open = open !== false;
  node.append(el("summary", "tl-section-title", title));
  const body = el("div", "tl-section-body");
  body.append(content);
  node.append(body);
  return node;
}

/**
 * The detail pane of a span. ``lazy`` is null when spans carry their payloads; else
 * { full, error, retry }: the span as loaded (or null while it loads), the load error.
 */
function spanDetailView(node, model, lazy) {
  const span = lazy && isObject(lazy.full) ? lazy.full : node.span;
  const status = spanStatus(node.span);
  const attributes = isObject(span.attributes) ? span.attributes : {};
  const events = Array.isArray(span.events) ? span.events.filter(isObject) : [];
  const box = el("div", "tl-span-detail");
  const head = el("div", "tl-detail-head");
  head.append(badge(node.span.span_type), el("span", "tl-detail-name", spanName(node.span)));
  box.append(head);
  const meta = el("div", "tl-meta");
  metaItem(meta, "Status", status.code, status.code === "ERROR" ? "tl-meta-error" : "");
  metaItem(meta, "Duration", node.end === null ? "in progress" : formatDuration(node.end - node.start));
  metaItem(meta, "Start", "+" + formatDuration(node.start - model.t0));
  metaItem(meta, "Model", attributes[MODEL] === undefined ? null : String(attributes[MODEL]));
  metaItem(meta, "Tokens", tokenText(attributes[TOKEN_USAGE]));
  costItem(meta, attributes[COST]);
  metaItem(meta, "Span ID", node.span.span_id ? String(node.span.span_id) : null, "tl-mono");
  box.append(meta);
  if (status.message) box.append(el("div", "tl-error-msg", status.message));
  if (lazy && !isObject(lazy.full)) {
    box.append(lazy.error ? loadErrorView(lazy.error, lazy.retry) : loadingView());
    return box;
  }
  const messages = CHAT_TYPES.has(span.span_type) ? chatMessages(span) : null;
  if (messages) box.append(section("Conversation", chatView(messages, attributes[CHAT_TOOLS])));
  box.append(section("Inputs", valueView(span.inputs, "No inputs")));
  box.append(section("Outputs", valueView(span.outputs, "No outputs")));
  const exceptions = events.filter((event) => event.name === "exception");
  if (exceptions.length) box.append(section("Exception", exceptionsView(exceptions)));
  const hasAttributes = Object.keys(attributes).length > 0;
  box.append(section("Attributes", valueView(hasAttributes ? attributes : null, "No attributes", 1)));
  box.append(section("Events (" + events.length + ")", eventsView(events, node), events.length > 0));
  return box;
}

function loadingView() {
  const node = el("div", "tl-loading", "Loading inputs, outputs, attributes and events" + ELLIPSIS);
  node.setAttribute("role", "status");
  return node;
}

function loadErrorView(error, retry) {
  const box = el("div", "tl-load-error");
  box.setAttribute("role", "alert");
  const message = error && error.message ? error.message : String(error);
  box.append(el("span", "", "Could not load this span: " + message), button("tl-more", "Retry", retry));
  return box;
}

function exceptionsView(events) {
  const box = el("div", "tl-exceptions");
  for (const event of events) {
    const a = isObject(event.attributes) ? event.attributes : {};
    const type = a["exception.type"] ? String(a["exception.type"]) : "Exception";
    const message = a["exception.message"] === undefined ? "" : String(a["exception.message"]);
    box.append(el("div", "tl-exc-title", message ? type + ": " + message : type));
    if (a["exception.stacktrace"]) box.append(longText("pre", "tl-stack", String(a["exception.stacktrace"])));
  }
  return box;
}

function eventsView(events, node) {
  if (!events.length) return el("div", "tl-empty", "No events");
  const list = el("div", "tl-events");
  for (const event of events) {
    const item = el("div", "tl-event");
    const head = el("div", "tl-event-head");
    const at = toNumber(event.timestamp_ns);
    head.append(el("span", "tl-event-name", event.name === undefined ? "(event)" : String(event.name)));
    if (at !== null) head.append(el("span", "tl-event-time", "+" + formatDuration(at - node.start)));
    item.append(head);
    if (isObject(event.attributes) && Object.keys(event.attributes).length) {
      item.append(valueView(event.attributes, "", 1));
    }
    list.append(item);
  }
  return list;
}

// ---------------------------------------------------------------- the trace view

class TraceView {
  constructor(container, trace, options) {
    this.options = options || {};
    this.model = buildModel(trace);
    this.rows = flatten(this.model.roots);
    this.selected = this.findSpan(this.options.selectedSpanId) || this.rows[0] || null;
    this.frame = 0;
    this.root = el("div", "tl-tv");
    this.root.append(headerView(this.model), this.bodyView());
    container.replaceChildren(this.root);
    this.renderRows();
    this.renderDetail();
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(() => this.scheduleRows()).observe(this.scroller);
    }
  }

  findSpan(spanId) {
    if (spanId === undefined || spanId === null) return null;
    return this.model.nodes.find((node) => String(node.span.span_id) === String(spanId)) || null;
  }

  bodyView() {
    const body = el("div", "tl-body");
    const waterfall = el("div", "tl-waterfall");
    this.scroller = el("div", "tl-scroll");
    this.scroller.tabIndex = 0;
    this.scroller.setAttribute("role", "tree");
    this.scroller.setAttribute("aria-label", "Spans");
    this.spacer = el("div", "tl-spacer");
    this.scroller.append(this.spacer);
    this.scroller.addEventListener("scroll", () => this.scheduleRows());
    this.scroller.addEventListener("click", (event) => this.onClick(event));
    this.scroller.addEventListener("keydown", (event) => this.onKey(event));
    waterfall.append(this.headView(), this.scroller);
    this.detail = el("div", "tl-detail");
    body.append(waterfall, this.detail);
    return body;
  }

  headView() {
    const head = el("div", "tl-wf-head");
    const left = el("div", "tl-wf-head-tree");
    left.append(
      el("span", "tl-wf-title", "Spans"),
      button("tl-link", "Expand all", () => this.setAllExpanded(true)),
      button("tl-link", "Collapse all", () => this.setAllExpanded(false)),
    );
    const axis = el("div", "tl-axis");
    for (const f of [0, 1 / 3, 2 / 3, 1]) {
      const tick = el("span", "tl-tick" + (f === 0 ? " tl-tick-start" : f === 1 ? " tl-tick-end" : ""));
      tick.textContent = f === 0 ? "0" : formatDuration(this.model.total * f);
      tick.style.left = f * 100 + "%";
      axis.append(tick);
    }
    head.append(left, axis);
    return head;
  }

  scheduleRows() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.renderRows());
  }

  /** Draws only the rows in (or near) the visible part of the scroller. */
  renderRows() {
    this.frame = 0;
    const count = this.rows.length;
    this.spacer.style.height = count * ROW_HEIGHT + "px";
    const top = this.validScrollTop(count);
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(count, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.append(this.rowView(this.rows[i], i));
    this.spacer.replaceChildren(frag);
  }

  /**
   * The scroll offset, within the ``count`` rows there are now. When the list has just
   * shrunk (collapsing while scrolled down), Chromium still reports the old, larger offset
   * until its next frame: drawing from it drew no rows at all. So the offset is clamped
   * here, and written back, before the rows are chosen.
   */
  validScrollTop(count) {
    const limit = Math.max(0, count * ROW_HEIGHT - this.scroller.clientHeight);
    const top = this.scroller.scrollTop;
    if (top <= limit) return Math.max(0, top);
    this.scroller.scrollTop = limit;
    return limit;
  }

  rowView(node, index) {
    const span = node.span;
    const status = spanStatus(span).code;
    const row = el("div", "tl-row");
    row.dataset.index = String(index);
    row.style.top = index * ROW_HEIGHT + "px";
    row.setAttribute("role", "treeitem");
    row.setAttribute("aria-level", String(node.depth + 1));
    row.setAttribute("aria-selected", node === this.selected ? "true" : "false");
    if (node.kids.length) row.setAttribute("aria-expanded", node.expanded ? "true" : "false");
    if (node === this.selected) row.classList.add("tl-selected");
    if (status === "ERROR") row.classList.add("tl-row-error");
    const tree = el("div", "tl-cell-tree");
    tree.style.paddingLeft = 4 + Math.min(node.depth, MAX_INDENT_LEVELS) * INDENT_PX + "px";
    tree.append(el("span", "tl-toggle", node.kids.length ? (node.expanded ? OPEN : CLOSED) : ""));
    if (node.depth > MAX_INDENT_LEVELS) tree.append(el("span", "tl-depth", "L" + node.depth));
    const name = el("span", "tl-name", spanName(span));
    name.title = spanName(span);
    tree.append(badge(span.span_type), name);
    if (status === "ERROR") tree.append(el("span", "tl-err-mark", "error"));
    tree.append(el("span", "tl-dur", node.end === null ? ELLIPSIS : formatDuration(node.end - node.start)));
    row.append(tree, this.barView(node, status));
    return row;
  }

  barView(node, status) {
    const { t0, total } = this.model;
    const cell = el("div", "tl-cell-time");
    const bar = el("div", "tl-bar " + typeClass(node.span.span_type));
    if (status === "ERROR") bar.classList.add("tl-bar-error");
    if (node.end === null) bar.classList.add("tl-bar-open");
    const end = node.end === null ? t0 + total : node.end;
    bar.style.left = (((node.start - t0) / total) * 100).toFixed(3) + "%";
    bar.style.width = ((Math.max(end - node.start, 0) / total) * 100).toFixed(3) + "%";
    cell.append(bar);
    return cell;
  }

  renderDetail() {
    const node = this.selected;
    let content;
    if (!node) {
      content = el("div", "tl-empty", "This trace has no spans.");
    } else if (typeof this.options.loadSpan === "function") {
      if (!node.full && !node.loading && !node.error) this.loadPayload(node);
      const retry = () => {
        node.error = null;
        this.renderDetail();
      };
      content = spanDetailView(node, this.model, { full: node.full, error: node.error, retry });
    } else {
      content = spanDetailView(node, this.model, null);
    }
    this.detail.replaceChildren(content);
    this.detail.scrollTop = 0;
  }

  /** Asks ``options.loadSpan`` for a span's payloads; shows them if it is still selected. */
  loadPayload(node) {
    let result;
    try {
      result = this.options.loadSpan(node.span);
    } catch (error) {
      node.error = error || new Error("loading failed");
      return;
    }
    if (!result || typeof result.then !== "function") {
      node.full = isObject(result) ? result : node.span;
      return;
    }
    node.loading = true;
    const settle = () => {
      node.loading = false;
      if (this.selected === node && this.root.isConnected) this.renderDetail();
    };
    result.then(
      (span) => {
        node.full = isObject(span) ? span : node.span;
        settle();
      },
      (error) => {
        node.error = error || new Error("loading failed");
        settle();
      },
    );
  }

  onClick(event) {
    const target = event.target instanceof Element ? event.target : null;
    const row = target ? target.closest(".tl-row") : null;
    if (!row || !this.scroller.contains(row)) return;
    const node = this.rows[Number(row.dataset.index)];
    if (!node) return;
    if (target.closest(".tl-toggle") && node.kids.length) this.toggle(node);
    else this.select(node);
  }

  onKey(event) {
    const node = this.selected;
    if (!node) return;
    const index = this.rows.indexOf(node);
    let next = null;
    if (event.key === "ArrowDown") next = this.rows[index + 1];
    else if (event.key === "ArrowUp") next = this.rows[index - 1];
    else if (event.key === "Home") next = this.rows[0];
    else if (event.key === "End") next = this.rows[this.rows.length - 1];
    else if (event.key === "ArrowRight" && node.kids.length) {
      if (node.expanded) next = node.kids[0];
      else this.toggle(node);
    } else if (event.key === "ArrowLeft") {
      if (node.expanded && node.kids.length) this.toggle(node);
      else next = node.parent;
    } else return;
    event.preventDefault();
    if (next) this.select(next);
  }

  toggle(node) {
    node.expanded = !node.expanded;
    this.rows = flatten(this.model.roots);
    this.renderRows();
  }

  setAllExpanded(expanded) {
    for (const node of this.model.nodes) node.expanded = expanded;
    this.rows = flatten(this.model.roots);
    if (this.selected && !this.rows.includes(this.selected)) this.selected = this.rows[0] || null;
    this.renderRows();
    this.renderDetail();
  }

  select(node) {
    this.selected = node;
    const top = this.rows.indexOf(node) * ROW_HEIGHT;
    const view = this.scroller.clientHeight;
    if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
    else if (view && top + ROW_HEIGHT > this.scroller.scrollTop + view) this.scroller.scrollTop = top + ROW_HEIGHT - view;
    this.renderRows();
    this.renderDetail();
    if (typeof this.options.onSelectSpan === "function") this.options.onSelectSpan(node.span.span_id);
  }
}

function failureView(error) {
  return el("div", "tl-render-error", "Could not render this trace: " + (error && error.message ? error.message : String(error)));
}

/**
 * Draws one trace into ``container`` (its children are replaced).
 * ``trace`` is Trace.to_dict() (or its JSON text); ``options.selectedSpanId`` picks the
 * span shown first and ``options.onSelectSpan(spanId)`` hears about clicks. With
 * ``options.loadSpan(span)`` the spans are structure only and the selected one's payloads
 * are loaded through it (a span, or a Promise of one; a rejection is shown with a retry).
 */
function renderTrace(container, trace, options) {
  try {
    const data = typeof trace === "string" ? JSON.parse(trace) : trace;
    return new TraceView(container, data, options);
  } catch (error) {
    container.replaceChildren(failureView(error));
    return null;
  }
}

/** Draws several traces behind a row of tabs (one trace draws as renderTrace does). */
function renderTraceList(container, traces) {
  const list = Array.isArray(traces) ? traces : [traces];
  if (list.length === 1) return renderTrace(container, list[0]);
  const wrap = el("div", "tl-list");
  const tabs = el("div", "tl-tabs");
  tabs.setAttribute("role", "tablist");
  const holder = el("div", "tl-list-body");
  const buttons = [];
  const show = (index) => {
    buttons.forEach((b, i) => {
      b.classList.toggle("tl-tab-active", i === index);
      b.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    renderTrace(holder, list[index]);
  };
  list.forEach((trace, index) => {
    const info = isObject(trace) && isObject(trace.info) ? trace.info : {};
    const tab = button("tl-tab", undefined, () => show(index));
    tab.setAttribute("role", "tab");
    const ms = toNumber(info.execution_duration);
    tab.append(
      el("span", "tl-dot " + stateClass(info.state)),
      el("span", "tl-tab-name", info.name || info.trace_id || "trace " + (index + 1)),
      el("span", "tl-tab-dur", ms === null ? "" : formatDuration(ms * 1e6)),
    );
    tab.title = info.trace_id ? String(info.trace_id) : "";
    buttons.push(tab);
    tabs.append(tab);
  });
  wrap.append(el("div", "tl-list-title", list.length ? plural(list.length, "trace") : "No traces"), tabs, holder);
  container.replaceChildren(wrap);
  if (list.length) show(0);
  return wrap;
}

export { renderTrace, renderTraceList };
