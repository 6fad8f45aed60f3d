// The page's chrome shared by every view: the flash message, the confirm
// dialog, the failed-jobs count in the navigation, and the building blocks
// of a view (heading, section, error and "not served" notices).

import { h, replaceContent } from "./dom.js";
import { fmtNum, plural } from "./format.js";

// Show a message at the top of the page; kind is "ok", "warn" or "bad".
export function flash(kind, text, details) {
  const el = document.getElementById("flash");
  el.classList.remove("is-bad", "is-warn");
  if (kind === "bad") el.classList.add("is-bad");
  if (kind === "warn") el.classList.add("is-warn");
  el.querySelector(".flash-text").textContent = text;
  replaceContent(el.querySelector(".flash-details"), details || []);
  el.hidden = false;
}

export function closeFlash() {
  document.getElementById("flash").hidden = true;
}

// A bug in this page, or something the Content-Security-Policy blocked,
// is shown rather than swallowed, and counted on <body data-page-errors>
// for the browser test.
export function pageError(text) {
  document.body.dataset.pageErrors = String(Number(document.body.dataset.pageErrors || 0) + 1);
  flash("bad", `The dashboard hit a problem: ${text}. Reload the page; if it persists, report it.`);
}

// A real modal: resolves true when the operator confirms.
export function confirmDialog({ title, body, confirmLabel, danger }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  replaceContent(document.getElementById("confirm-body"), body);
  const ok = document.getElementById("confirm-ok");
  ok.textContent = confirmLabel;
  ok.classList.toggle("is-danger", Boolean(danger));
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// The open failed jobs on the navigation's "Failed jobs" link, from the
// unfiltered groups (null leaves the count alone).
export function updateFailedCount(groups) {
  if (!Array.isArray(groups)) return;
  const el = document.getElementById("nav-failed-count");
  const open = groups.reduce((n, g) => n + Number(g.count), 0);
  el.textContent = fmtNum(open);
  el.hidden = open === 0;
  el.title = `${plural(open, "open failed job")} in ${plural(groups.length, "group")}`;
}

export function pageHead(title, ...extra) {
  return h("div", { class: "page-head" }, h("h1", {}, title), extra);
}

export function section(title, content) {
  return h("section", { class: "section" }, h("div", { class: "section-head" }, h("h2", {}, title)), h("div", { class: "panel" }, content));
}

export function unavailable(what, path) {
  return h(
    "p",
    { class: "unavailable" },
    `${what} is not available on this server: `,
    h("code", {}, `GET /admin/api${path}`),
    " is not served by this version.",
  );
}

export function errorBox(message) {
  return h("div", { class: "callout callout-bad", role: "alert" }, message);
}
