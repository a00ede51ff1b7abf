/* The REST API client: JSON in and out, errors as ApiError with the server's message.
 * When the server requires a token, the user pastes it once; it is kept in
 * sessionStorage (this tab only) and sent as "Authorization: Bearer …". */

import { h } from "./dom.js";

const TOKEN_KEY = "threadline.token";
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let authWaiters = [];

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Calls ``path`` (under /api/v1); ``query`` values may be arrays (repeated keys). */
export async function api(path, { method = "GET", query, body } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(item));
  }
  const headers = { Accept: "application/json" };
  const saved = token();
  if (saved) headers.Authorization = "Bearer " + saved;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401) {
    await askForToken(saved ? "The saved token was refused." : "This server requires a token.");
    return api(path, { method, query, body });
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || "HTTP_" + response.status, error.message || response.statusText);
  }
  return data;
}

const names = new Map();

/** An experiment's name (cached; its id when it cannot be read). */
export function experimentName(experimentId) {
  const id = String(experimentId);
  if (!names.has(id)) {
    names.set(
      id,
      api("/experiments/" + encodeURIComponent(id)).then(
        (data) => String(data.experiment.name),
        () => "Experiment " + id,
      ),
    );
  }
  return names.get(id);
}

/** Forgets cached names (after a rename). */
export function forgetExperimentNames() {
  names.clear();
}

/** Shows the token form and resolves once the user has saved a token. */
function askForToken(reason) {
  return new Promise((resolve) => {
    authWaiters.push(resolve);
    if (authWaiters.length > 1) return;
    const box = document.getElementById("auth");
    const input = h("input.tla-input", { type: "password", placeholder: "token", autocomplete: "off", name: "token" });
    const form = h(
      "form.tla-auth-form",
      {
        onsubmit: (event) => {
          event.preventDefault();
          const value = input.value.trim();
          if (!value) return;
          try {
            sessionStorage.setItem(TOKEN_KEY, value);
          } catch {
            /* storage disabled: the token cannot be kept */
          }
          box.hidden = true;
          box.replaceChildren();
          const waiting = authWaiters;
          authWaiters = [];
          for (const done of waiting) done();
        },
      },
      h("span", {}, reason + " Paste an API token (kept for this tab only): "),
      input,
      h("button.tla-btn.tla-primary", { type: "submit" }, "Use token"),
    );
    box.replaceChildren(form);
    box.hidden = false;
    input.focus();
  });
}
