/* Small DOM helpers for the threadline UI. Every value reaches the page as text
 * (textContent or a DOM property); nothing here parses HTML. */

/** An element: ``h("a.cls", { href, onclick, title }, child, "text", …)``. */
export function h(spec, props, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/** A link to a route of this page (hash URLs only: never a URL from trace data). */
export function link(hash, text, className) {
  return h("a" + (className ? "." + className : ""), { href: hash }, text);
}

export function formatTime(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return "\u2014";
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return "\u2014"; // out of Date's range: a bad stored time
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

export function formatAgo(ms) {
  if (ms === null || ms === undefined) return "\u2014";
  const seconds = Math.max(0, (Date.now() - Number(ms)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "\u2014";
  const n = Number(ms);
  if (n < 1) return "<1 ms";
  if (n < 1000) return `${n} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
  return `${Math.floor(n / 60000)} min ${Math.round((n % 60000) / 1000)} s`;
}

export function truncate(text, max) {
  const s = text === null || text === undefined ? "" : String(text);
  return s.length > max ? s.slice(0, max - 1) + "\u2026" : s;
}

/** The token total of a trace summary (metadata ``token_usage`` is JSON text). */
export function tokenTotal(info) {
  const raw = info && info.trace_metadata ? info.trace_metadata.token_usage : null;
  if (!raw) return null;
  try {
    const usage = typeof raw === "string" ? JSON.parse(raw) : raw;
    const total = Number(usage.total_tokens ?? (usage.input_tokens || 0) + (usage.output_tokens || 0));
    return Number.isFinite(total) ? total : null;
  } catch {
    return null;
  }
}

/** The total USD cost of a trace summary (metadata ``cost`` is JSON text), or null. */
export function costTotal(info) {
  const raw = info && info.trace_metadata ? info.trace_metadata.cost : null;
  if (!raw) return null;
  try {
    const cost = typeof raw === "string" ? JSON.parse(raw) : raw;
    const total = Number(cost.total_cost);
    return Number.isFinite(total) && total >= 0 ? total : null;
  } catch {
    return null;
  }
}

/** US dollars with four significant digits, never in exponent form (as trace_view.js). */
export function formatUsd(value) {
  if (value === 0) return "$0.00";
  const decimals = Math.min(12, Math.max(2, 3 - Math.floor(Math.log10(value))));
  let text = value.toFixed(decimals);
  if (text.includes(".")) {
    text = text.replace(/0+$/, "");
    const places = text.length - text.indexOf(".") - 1;
    if (places < 2) text += "0".repeat(2 - places);
  }
  return "$" + text;
}

export function stateBadge(state) {
  const known = ["OK", "ERROR", "IN_PROGRESS"].includes(state) ? state : "OTHER";
  return h("span.tla-state.tla-state-" + known, {}, state === "IN_PROGRESS" ? "IN PROGRESS" : String(state));
}

/** An inline error box (the server's message as text). */
export function errorBox(error) {
  const message = error && error.message ? error.message : String(error);
  return h("div.tla-error", { role: "alert" }, message);
}

/** A button that asks for a second click before doing something destructive. */
export function confirmButton(label, confirmLabel, action) {
  let armed = false;
  let timer = 0;
  const button = h("button.tla-btn.tla-danger", { type: "button" }, label);
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = typeof confirmLabel === "function" ? confirmLabel() : confirmLabel;
      button.classList.add("tla-armed");
      timer = setTimeout(() => {
        armed = false;
        button.textContent = label;
        button.classList.remove("tla-armed");
      }, 4000);
      return;
    }
    clearTimeout(timer);
    armed = false;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      button.textContent = label;
      button.classList.remove("tla-armed");
    }
  });
  return button;
}
