// Stuck orders: orders that stayed in one non-final status for days.

import { API, request } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { timeAgo } from "./format.js";
import { poll } from "./poll.js";
import { errorBox, pageHead, section, unavailable } from "./ui.js";
import { anyValue, kvList } from "./values.js";

// The threshold the operator last asked for, kept across visits.
let stuckDays = 3;

export function stuckView(root) {
  const days = h("input", { id: "stuck-days", type: "number", min: 1, max: 365, value: stuckDays, "data-key": "stuck-days" });
  const body = h("div", {});
  const stamp = h("span", { class: "muted" });
  replaceContent(
    root,
    pageHead("Stuck orders", stamp, h("a", { href: "#/orders" }, "← Trace an order")),
    h(
      "form",
      {
        class: "toolbar",
        onsubmit: (e) => {
          e.preventDefault();
          const n = Number(days.value);
          if (Number.isInteger(n) && n >= 1) {
            stuckDays = n;
            last = null;
            poll();
          }
        },
      },
      h("div", { class: "field" }, h("label", { for: "stuck-days" }, "In one non-final status for at least (days)"), days),
      h("button", { type: "submit", class: "btn btn-primary" }, "Show"),
    ),
    body,
  );
  let last = null;
  return {
    async refresh() {
      const r = await request("GET", `${API}/orders/stuck?days=${stuckDays}`);
      const key = JSON.stringify([r.status, r.data]);
      if (key === last) return;
      last = key;
      if (r.notServed) return replaceContent(body, unavailable("The stuck-orders report", "/orders/stuck"));
      if (!r.ok) return replaceContent(body, errorBox((r.data && r.data.error) || `HTTP ${r.status}`));
      const data = r.data || {};
      replaceContent(stamp, data.generated_at ? ["as of ", timeAgo(data.generated_at)] : []);
      const perStore = data.stores || data.per_store || data.counts;
      const orders = data.orders || data.stuck;
      const rest = Object.entries(data).filter(([k]) => !["stores", "per_store", "counts", "orders", "stuck", "generated_at"].includes(k));
      replaceContent(
        body,
        perStore !== undefined ? section("Per store", Array.isArray(perStore) ? anyValue(perStore, "No stuck orders.") : kvList(Object.entries(perStore))) : "",
        orders !== undefined ? section("Orders", anyValue(orders, "No stuck orders.")) : "",
        rest.length ? section("Details", kvList(rest)) : "",
      );
    },
  };
}
