// Tracing one order: its state, status history, jobs, SMS, invoice and a
// diagnosis of what holds it up.

import { API, request } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { badge, fmtNum, jobLink, timeAgo } from "./format.js";
import { errorBox, pageHead, section, unavailable } from "./ui.js";
import { anyValue, kvList } from "./values.js";

export function ordersView(root, reference) {
  const input = h("input", {
    id: "order-ref",
    type: "search",
    placeholder: "e.g. ALPH-1001",
    value: reference || "",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const body = h("div", {});
  replaceContent(
    root,
    pageHead("Trace an order", h("a", { href: "#/orders" }, "← All orders"), h("a", { href: "#/orders/stuck" }, "Stuck orders →")),
    h(
      "form",
      {
        class: "toolbar",
        role: "search",
        onsubmit: (e) => {
          e.preventDefault();
          const ref = input.value.trim();
          if (ref) window.location.hash = `#/orders/${encodeURIComponent(ref)}`;
        },
      },
      h("div", { class: "field" }, h("label", { for: "order-ref" }, "Order reference"), input),
      h("button", { type: "submit", class: "btn btn-primary" }, "Trace"),
    ),
    body,
  );
  if (!reference) {
    replaceContent(body, h("p", { class: "muted" }, "Enter an order reference to see its status history, jobs, SMS, invoice and a diagnosis."));
    setTimeout(() => input.focus(), 0);
    return { async refresh() {} };
  }
  let last = null;
  return {
    async refresh() {
      const r = await request("GET", `${API}/orders/${encodeURIComponent(reference)}`);
      const key = JSON.stringify([r.status, r.data]);
      if (key === last) return;
      last = key;
      if (r.notServed) return replaceContent(body, unavailable("Order tracing", "/orders/{reference}"));
      if (!r.ok) return replaceContent(body, errorBox((r.data && r.data.error) || `HTTP ${r.status}`));
      replaceContent(body, orderTrace(r.data || {}));
    },
  };
}

const TRACE_SECTIONS = ["diagnosis", "status_history", "jobs", "sms", "invoice"];

function orderTrace(trace) {
  const out = [];
  const diagnosis = Array.isArray(trace.diagnosis) ? trace.diagnosis : trace.diagnosis ? [trace.diagnosis] : [];
  if (diagnosis.length) {
    out.push(h("div", { class: "callout callout-warn" }, h("h2", {}, "Diagnosis"), h("ul", {}, diagnosis.map((d) => h("li", {}, anyValue(d))))));
  }
  // The order's current state: every field that is not one of the sections.
  const facts = Object.entries(trace).filter(([k]) => !TRACE_SECTIONS.includes(k));
  const cols = [h("section", { class: "panel panel-pad" }, h("h2", {}, "Order"), h("div", { class: "section" }, kvList(facts)))];
  if (trace.invoice !== undefined) cols.push(h("section", { class: "panel panel-pad" }, h("h2", {}, "Invoice"), h("div", { class: "section" }, anyValue(trace.invoice, "No invoice yet."))));
  out.push(h("div", { class: "grid-2" }, cols));
  if (trace.status_history !== undefined) out.push(section("Status history", anyValue(trace.status_history, "No status changes recorded.")));
  if (trace.jobs !== undefined) out.push(section("Jobs", traceJobs(trace.jobs)));
  if (trace.sms !== undefined) out.push(section("SMS", anyValue(trace.sms, "No SMS sent.")));
  return out;
}

function traceJobs(jobs) {
  if (!Array.isArray(jobs) || !jobs.length || typeof jobs[0] !== "object") return anyValue(jobs, "No jobs touched this order.");
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ["Job", "Kind", "State", "Source", "Enqueued"].map((t) => h("th", {}, t)), h("th", { class: "num" }, "Runs"), h("th", {}, "Last error"))),
    h(
      "tbody",
      {},
      jobs.map((j) => {
        const runs = Array.isArray(j.runs) ? j.runs : [];
        const errors = Array.isArray(j.errors) ? j.errors : [];
        const lastRun = runs[runs.length - 1] || {};
        const lastError = errors.length ? errors[errors.length - 1] : lastRun.error_message;
        const state = j.state || lastRun.outcome;
        return h(
          "tr",
          {},
          h("td", {}, jobLink(j.job_id || j.id)),
          h("td", { class: "mono" }, j.kind || "—"),
          h("td", {}, state ? badge(state) : "—"),
          h("td", {}, j.source || "—"),
          h("td", { class: "nowrap" }, j.enqueued_at ? timeAgo(j.enqueued_at) : "—"),
          h("td", { class: "num" }, fmtNum(runs.length)),
          h("td", { class: "message" }, lastError === undefined || lastError === null ? "" : typeof lastError === "object" ? lastError.message || lastError.error_message || JSON.stringify(lastError) : String(lastError)),
        );
      }),
    ),
  );
}
