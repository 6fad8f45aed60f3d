// Provider accounts: each one's limits and its circuit breaker, from
// /admin/api/stores (`accounts`).

import { h } from "./dom.js";
import { badge, fmtNum } from "./format.js";

const BREAKER_BADGE = { closed: "badge-ok", half_open: "badge-warn", open: "badge-bad" };

export function openBreakers(accounts) {
  return (accounts || []).filter((a) => a.breaker && a.breaker.state !== "closed").length;
}

export function accountsTable(rows) {
  if (!rows.length) return h("p", { class: "empty" }, "No provider accounts configured.");
  return h(
    "table",
    { class: "accounts" },
    h(
      "thead",
      {},
      h("tr", {}, ["Account", "Provider", "Rate", "In flight", "Breaker"].map((t) => h("th", {}, t))),
    ),
    h(
      "tbody",
      {},
      rows.map((a) => {
        const state = (a.breaker && a.breaker.state) || "closed";
        const detail =
          state === "open"
            ? ` until ${new Date(a.breaker.until).toLocaleTimeString()}: jobs parked, no attempts used`
            : state === "half_open"
              ? ": one probe is testing the account"
              : a.breaker && a.breaker.failures
                ? ` (${a.breaker.failures} failure(s) in a row)`
                : "";
        return h(
          "tr",
          { class: state === "open" ? "row-bad" : state === "half_open" ? "row-warn" : "", dataset: { account: `${a.role}/${a.account}` } },
          h("td", {}, h("span", { class: "mono" }, a.account), " ", h("span", { class: "muted" }, a.role)),
          h("td", { class: "mono" }, a.provider),
          h("td", {}, a.rate_per_s ? `${fmtNum(a.rate_per_s)}/s, burst ${fmtNum(a.burst)}` : "no limit"),
          h("td", {}, a.max_in_flight ? fmtNum(a.max_in_flight) : "no cap"),
          h(
            "td",
            { class: "breaker", title: `opens after ${a.breaker_failures} failures in a row, for ${a.breaker_open_secs} s` },
            badge(state.replace("_", "-"), BREAKER_BADGE[state]),
            detail,
          ),
        );
      }),
    ),
  );
}
