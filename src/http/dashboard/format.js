// Numbers, ages, times, ids and outcomes as the operator reads them.

import { h } from "./dom.js";

const numberFormat = new Intl.NumberFormat();
export const fmtNum = (n) => (n === null || n === undefined ? "—" : numberFormat.format(n));

export const plural = (n, one, many) => `${fmtNum(n)} ${n === 1 ? one : many || one + "s"}`;

export function fmtAge(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return "—";
  const s = Math.max(0, secs);
  if (s < 1) return "<1 s";
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const hours = Math.floor(s / 3600);
    const min = Math.floor((s % 3600) / 60);
    return min ? `${hours} h ${min} min` : `${hours} h`;
  }
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1) return "<1 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return fmtAge(ms / 1000);
}

// "3 min ago": precise while recent, coarser with age (nobody needs the
// minutes of something that happened a day ago; the tooltip has them).
function relative(date, now) {
  const secs = (now - date) / 1000;
  const abs = Math.abs(secs);
  if (abs < 5) return "just now";
  let text;
  if (abs < 3 * 3600) text = fmtAge(abs);
  else if (abs < 86400) text = `${Math.floor(abs / 3600)} h`;
  else text = fmtAge(abs);
  return secs > 0 ? `${text} ago` : `in ${text}`;
}

// A <time> that reads "3 min ago" and shows the absolute time on hover;
// refreshRelativeTimes keeps the words current between refreshes.
export function timeAgo(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return h(
    "time",
    { datetime: iso, title: `${date.toLocaleString()} (${date.toISOString()})`, "data-rel": "" },
    relative(date, Date.now()),
  );
}

// Rewrite every timeAgo on the page for the current time.
export function refreshRelativeTimes() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time[data-rel]")) {
    el.textContent = relative(new Date(el.getAttribute("datetime")), now);
  }
}

export const shortId = (id) => (id ? String(id).slice(0, 8) + "…" + String(id).slice(-4) : "—");
export const jobLink = (id) =>
  id ? h("a", { href: `#/jobs/${encodeURIComponent(id)}`, class: "mono", title: id }, shortId(id)) : "—";
export const orderLink = (ref) =>
  ref ? h("a", { href: `#/orders/${encodeURIComponent(ref)}`, class: "mono" }, ref) : h("span", { class: "muted" }, "—");

const OUTCOME_BADGE = {
  succeeded: "badge-ok",
  skipped: "",
  retry: "badge-warn",
  deferred: "badge-info",
  queued: "badge-info",
  failed: "badge-bad",
  not_found: "badge-bad",
  replayed: "badge-info",
  discarded: "",
};
// A badge coloured by `cls`, or by what the outcome `text` means.
export const badge = (text, cls) => h("span", { class: `badge ${cls === undefined ? OUTCOME_BADGE[text] || "" : cls}` }, text);
