/* threadline web UI: picks the page for the URL hash and keeps the header up to date. */

import { h } from "./dom.js";
import { parseHash, routes } from "./router.js";
import { experimentsPage } from "./experiments.js";
import { tracesPage } from "./traces.js";
import { tracePage } from "./trace_page.js";
import { runsPage, runPage } from "./runs.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
let current = null;

/** What a page may use: its container, the header, timers stopped when it is left. */
class PageContext {
  constructor() {
    this.main = main;
    this.cleanups = [];
    this.active = true;
  }

  crumbs(items) {
    const nodes = [];
    for (const [text, hash] of items) {
      if (nodes.length) nodes.push(h("span.tla-sep", {}, "/"));
      nodes.push(hash ? h("a", { href: hash }, text) : h("span.tla-here", {}, text));
    }
    crumbs.replaceChildren(...nodes);
    document.title = items.length ? items[items.length - 1][0] + " \u00b7 threadline" : "threadline";
  }

  live(text) {
    live.textContent = text || "";
  }

  /** Calls ``fn`` every ``ms`` while this page is shown and the tab is visible. */
  every(ms, fn) {
    let busy = false;
    const id = setInterval(async () => {
      if (!this.active || busy || document.hidden) return;
      busy = true;
      try {
        await fn();
      } finally {
        busy = false;
      }
    }, ms);
    const stop = () => clearInterval(id);
    this.cleanups.push(stop);
    return stop;
  }

  leave() {
    this.active = false;
    for (const fn of this.cleanups) fn();
    this.cleanups = [];
  }
}

function show() {
  const { path, query } = parseHash(location.hash);
  if (current) current.leave();
  const ctx = (current = new PageContext());
  ctx.live("");
  const [kind, id, sub] = path;
  if (kind === "experiments" && id && sub === "runs") return runsPage(ctx, id);
  if (kind === "experiments" && id) return tracesPage(ctx, id, query);
  if (kind === "traces" && id) return tracePage(ctx, id, query);
  if (kind === "runs" && id) return runPage(ctx, id);
  if (path.length && kind !== "experiments") {
    history.replaceState(null, "", routes.experiments());
  }
  return experimentsPage(ctx);
}

window.addEventListener("hashchange", show);
show();
