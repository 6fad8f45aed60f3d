// Overview: queues, stores and failures at a glance.

import { accountsTable, openBreakers } from "./accounts.js";
import { API, load } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { badge, fmtAge, fmtNum, plural, timeAgo } from "./format.js";
import { pausesPanel } from "./pauses.js";
import { pageHead, unavailable, updateFailedCount } from "./ui.js";

// Queue lag thresholds (oldest pending job's age), in seconds.
const LAG_WARN_SECS = 60;
const LAG_BAD_SECS = 300;
// Tracking coverage below these fractions is a warning / a problem.
const COVERAGE_WARN = 0.95;
const COVERAGE_BAD = 0.8;

export function overviewView(root) {
  const cards = h("div", { class: "cards" });
  const queues = h("div", { class: "panel" });
  const stores = h("div", { class: "panel" });
  const queuesStamp = h("span", { class: "muted" });
  const storesStamp = h("span", { class: "muted" });
  const accounts = h("div", { class: "panel" });
  // Filled in below: the view's refresh is what a pause or resume calls.
  let view = null;
  const pauses = pausesPanel(() => view.refresh());
  replaceContent(
    root,
    pageHead("Overview"),
    cards,
    h("section", { class: "section" }, h("div", { class: "section-head" }, h("h2", {}, "Queues"), queuesStamp), queues),
    h(
      "section",
      { class: "section" },
      h("div", { class: "section-head" }, h("h2", {}, "Stores: freshness and tracking coverage"), storesStamp),
      stores,
    ),
    h(
      "section",
      { class: "section" },
      h("div", { class: "section-head" }, h("h2", {}, "Provider accounts: limits and circuit breakers")),
      accounts,
    ),
    h(
      "section",
      { class: "section", id: "pauses" },
      h("div", { class: "section-head" }, h("h2", {}, "Pauses: stores, accounts and job kinds whose jobs wait")),
      pauses.element,
    ),
  );
  let last = {};
  view = {
    async refresh() {
      const [q, s, g, t, p] = await Promise.all([
        load(`${API}/queues`),
        load(`${API}/stores`),
        load(`${API}/jobs/failed`),
        load(`${API}/sms/unknown`),
        load(`${API}/paused`),
      ]);
      pauses.update(p, s, q);
      updateFailedCount(g);
      const key = (x) => JSON.stringify(x);
      if (key(q) !== last.q) {
        replaceContent(queues, q ? queuesTable(q.queues || []) : unavailable("Queue depth", "/queues"));
        replaceContent(queuesStamp, q && q.generated_at ? ["as of ", timeAgo(q.generated_at)] : []);
      }
      if (key(s) !== last.s) {
        replaceContent(stores, s ? storesTable(s.stores || []) : unavailable("Store freshness", "/stores"));
        replaceContent(storesStamp, s && s.generated_at ? ["as of ", timeAgo(s.generated_at)] : []);
        replaceContent(accounts, s ? accountsTable(s.accounts || []) : unavailable("Provider accounts", "/stores"));
      }
      if (key([q, s, g, t]) !== last.all) replaceContent(cards, summaryCards(q, s, g, t));
      last = { q: key(q), s: key(s), all: key([q, s, g, t]) };
    },
  };
  return view;
}

function summaryCards(q, s, groups, unknownTexts) {
  const rows = (q && q.queues) || [];
  const sum = (field) => rows.reduce((n, r) => n + (Number(r[field]) || 0), 0);
  const maxLag = rows.reduce((m, r) => Math.max(m, Number(r.oldest_pending_age_secs) || 0), 0);
  const starved = rows.filter((r) => r.pending > 0 && r.workers === 0).length;
  const open = (groups || []).reduce((n, g) => n + Number(g.count), 0);
  const stale = ((s && s.stores) || []).filter((x) => x.active !== false && x.stale).length;
  const card = (label, value, state, href) =>
    h(href ? "a" : "div", { class: `card ${state ? "is-" + state : ""}`, href }, h("div", { class: "card-label" }, label), h("div", { class: "card-value" }, value));
  const out = [];
  if (q) {
    out.push(
      card("Pending", fmtNum(sum("pending"))),
      card("In flight", fmtNum(sum("in_flight"))),
      card("Oldest pending", maxLag ? fmtAge(maxLag) : "—", maxLag >= LAG_BAD_SECS ? "bad" : maxLag >= LAG_WARN_SECS ? "warn" : null),
      card("Done / min", fmtNum(sum("completed_last_minute"))),
      card("Failed / min", fmtNum(sum("failed_last_minute")), sum("failed_last_minute") ? "warn" : null),
    );
    if (starved) out.push(card("No workers", `${plural(starved, "queue")}`, "bad"));
    if (q.processes !== undefined) out.push(card("Worker processes", fmtNum(q.processes), q.processes ? null : "bad"));
    const missing = sum("missing");
    if (missing) out.push(card("Missing from Redis", fmtNum(missing), "bad"));
  }
  out.push(card("Open failures", fmtNum(open), open ? "bad" : null, "#/failed"));
  if (s) out.push(card("Stale stores", fmtNum(stale), stale ? "warn" : null));
  const breakers = s ? openBreakers(s.accounts) : 0;
  if (breakers) out.push(card("Breakers open", fmtNum(breakers), "bad"));
  if (unknownTexts) out.push(card("Texts of unknown fate", fmtNum(unknownTexts.length), unknownTexts.length ? "warn" : null, "#/texts"));
  return out;
}

function queuesTable(rows) {
  if (!rows.length) return h("p", { class: "empty" }, "No queues yet.");
  const sorted = [...rows].sort(
    (a, b) => String(a.kind).localeCompare(String(b.kind)) || (a.lane === "live" ? -1 : 1) - (b.lane === "live" ? -1 : 1),
  );
  const numCell = (n, cls) => h("td", { class: `num ${n ? "" : "zero"} ${cls || ""}` }, fmtNum(n));
  return h(
    "table",
    { class: "queues" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "Queue"),
        ["Pending", "Scheduled", "In flight", "Failed", "Oldest pending", "Done/min", "Failed/min", "Retried/min", "Missing", "Reconciled/h", "Workers"].map((t) =>
          h("th", { class: "num" }, t),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      sorted.map((r) => {
        const lag = r.oldest_pending_age_secs;
        const lagState = lag >= LAG_BAD_SECS ? "is-bad" : lag >= LAG_WARN_SECS ? "is-warn" : "";
        const starved = r.pending > 0 && r.workers === 0;
        const idle = !r.pending && !r.scheduled && !r.in_flight && !r.failed && !r.completed_last_minute && !r.failed_last_minute;
        const rowClass = starved || lagState === "is-bad" ? "row-bad" : lagState ? "row-warn" : idle ? "idle" : "";
        return h(
          "tr",
          { class: rowClass, dataset: { queue: r.queue } },
          h("td", { title: r.queue }, h("span", { class: "mono" }, r.kind), h("span", { class: `badge lane ${r.lane === "bulk" ? "" : "badge-info"}` }, r.lane)),
          numCell(r.pending),
          numCell(r.scheduled),
          numCell(r.in_flight),
          numCell(r.failed, r.failed ? "is-warn" : ""),
          h("td", { class: `num ${lagState}` }, lag === null || lag === undefined ? "—" : fmtAge(lag)),
          numCell(r.completed_last_minute),
          numCell(r.failed_last_minute, r.failed_last_minute ? "is-warn" : ""),
          numCell(r.retried_last_minute),
          numCell(r.missing, r.missing ? "is-bad" : ""),
          numCell(r.reconciled_last_hour, r.reconciled_last_hour ? "is-warn" : ""),
          h(
            "td",
            { class: `num ${starved ? "is-bad" : r.workers ? "" : "zero"}` },
            starved ? [badge("no workers", "badge-bad"), " "] : "",
            fmtNum(r.workers),
          ),
        );
      }),
    ),
  );
}

function storesTable(rows) {
  if (!rows.length) return h("p", { class: "empty" }, "No stores configured.");
  const freshness = (at, stale) =>
    h("td", { class: `nowrap ${stale ? "is-warn" : ""}` }, at ? timeAgo(at) : h("span", { class: "muted" }, "never"));
  return h(
    "table",
    { class: "stores" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "Store"),
        h("th", {}, "Courier account"),
        h("th", { class: "num" }, "Orders"),
        h("th", { class: "num" }, "Tracked"),
        h("th", { class: "num" }, "Coverage"),
        h("th", {}, "Last import"),
        h("th", {}, "Last tracking sync"),
        h("th", {}, "State"),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((s) => {
        const cov = s.tracking_coverage;
        const covState = cov === null || cov === undefined ? "" : cov < COVERAGE_BAD ? "is-bad" : cov < COVERAGE_WARN ? "is-warn" : "";
        const state = s.active === false ? badge("inactive", "") : s.stale ? badge("stale", "badge-warn") : badge("fresh", "badge-ok");
        return h(
          "tr",
          { class: s.active !== false && s.stale ? "row-warn" : "", dataset: { store: s.store } },
          h("td", {}, h("strong", { class: "mono" }, s.store)),
          h("td", {}, s.courier_account || h("span", { class: "muted" }, "—")),
          h("td", { class: "num" }, fmtNum(s.orders)),
          h("td", { class: "num" }, fmtNum(s.tracked)),
          h(
            "td",
            { class: `num ${covState}` },
            cov === null || cov === undefined
              ? "—"
              : h(
                  "span",
                  { class: "coverage" },
                  h("meter", { min: 0, max: 1, low: COVERAGE_BAD, high: COVERAGE_WARN, optimum: 1, value: cov, "aria-label": `tracking coverage of ${s.store}` }),
                  `${(cov * 100).toFixed(1)} %`,
                ),
          ),
          freshness(s.last_import_at, s.stale),
          freshness(s.last_tracking_at, s.stale),
          h("td", {}, state),
        );
      }),
    ),
  );
}
