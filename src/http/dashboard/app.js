// ordersync dashboard: one page, hash routes, polling /admin/api every 2 s.
//
// The entry module: it wires the page's global handlers, routes the address
// to a view, and starts once the session is read. The other modules, loaded
// natively by the browser (no bundler):
//   dom.js      the h() element helper, content replacement
//   format.js   numbers, ages, times, ids, links, badges
//   api.js      fetch wrapper, CSRF header, errors, the session
//   ui.js       flash, confirm dialog, nav count, view building blocks
//   poll.js     refreshing the current view, the "Live" indicator
//   resolve.js  replay / discard failed jobs
//   values.js   rendering arbitrary JSON values
//   overview.js, failed.js, job.js, orderlist.js, orders.js, stuck.js,
//   texts.js: one per view
//
// Everything is built with DOM calls (never innerHTML with data), so nothing
// a job, an order or an error message contains can run as script; the
// server's Content-Security-Policy forbids inline script and style anyway.

import { loadSession } from "./api.js";
import { failedView } from "./failed.js";
import { refreshRelativeTimes } from "./format.js";
import { jobView } from "./job.js";
import { orderListView } from "./orderlist.js";
import { ordersView } from "./orders.js";
import { overviewView } from "./overview.js";
import { connectionFailed, renderLive, showView, visibilityChanged } from "./poll.js";
import { stuckView } from "./stuck.js";
import { textsView } from "./texts.js";
import { closeFlash, pageError } from "./ui.js";

window.addEventListener("error", (e) => pageError(e.message || "script error"));
window.addEventListener("unhandledrejection", (e) => pageError(String((e.reason && e.reason.message) || e.reason)));
document.addEventListener("securitypolicyviolation", (e) =>
  pageError(`the security policy blocked ${e.violatedDirective} (${e.blockedURI || "inline"})`),
);
document.querySelector("#flash .flash-close").addEventListener("click", closeFlash);

// Keep "3 min ago" and "updated 5 s ago" current between refreshes.
setInterval(() => {
  refreshRelativeTimes();
  renderLive();
}, 1000);

// The view the address asks for: { nav, title, make(root) }.
function route() {
  const hash = window.location.hash.replace(/^#\/?/, "");
  const parts = hash.split("/").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  switch (parts[0]) {
    case "failed":
      return { nav: "failed", title: "Failed jobs", make: (root) => failedView(root) };
    case "jobs":
      return { nav: "failed", title: "Job", make: (root) => jobView(root, parts[1] || "") };
    case "texts":
      return { nav: "texts", title: "Texts of unknown fate", make: (root) => textsView(root) };
    case "orders":
      if (parts[1] === "stuck") return { nav: "orders", title: "Stuck orders", make: (root) => stuckView(root) };
      if (!parts[1]) return { nav: "orders", title: "Orders", make: (root) => orderListView(root) };
      return { nav: "orders", title: `Order ${parts[1]}`, make: (root) => ordersView(root, parts[1]) };
    default:
      return { nav: "overview", title: "Overview", make: (root) => overviewView(root) };
  }
}

function mount() {
  const r = route();
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${r.title} · ordersync`;
  const root = document.getElementById("view");
  showView(() => r.make(root));
}

document.addEventListener("visibilitychange", visibilityChanged);

window.addEventListener("hashchange", () => {
  mount();
  document.getElementById("view").focus({ preventScroll: true });
});

loadSession()
  .then(mount)
  .catch((e) => connectionFailed(e.message));
