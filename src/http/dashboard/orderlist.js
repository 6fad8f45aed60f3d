// The orders list: cached orders newest first with filters and a search
// (GET /orders, keyset pages), per-store counts and last syncs
// (GET /orders/stats) with a sync button per store and for all; each row
// links to the order's trace.

import { API, request } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { fmtNum, orderLink, timeAgo } from "./format.js";
import { errorBox, flash, pageHead, section, unavailable } from "./ui.js";

const COURIER_STATUSES = [
  "none", "pending", "processing", "on_hold", "in_transit", "out_for_delivery", "postponed",
  "delivery_issue", "delivered", "returning", "returned", "cancelled", "unknown",
];
const INVOICE_STATES = ["none", "creating", "voided", "draft", "submitted", "paid", "cancelled", "existing"];
const SHOP_STATUSES = ["pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"];

// Filters and the page position, kept across visits of the view.
const state = { filters: {}, cursors: [], cursor: null };

function choice(id, label, options, value) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, "data-key": id }, h("option", { value: "" }, "any"), options.map((o) => h("option", { value: o, selected: o === value }, o))),
  );
}

export function orderListView(root) {
  const f = state.filters;
  const search = h("input", {
    id: "orders-q",
    type: "search",
    placeholder: "reference, name or phone",
    value: f.q || "",
    autocomplete: "off",
    spellcheck: "false",
    "data-key": "orders-q",
  });
  const storeField = choice("orders-store", "Store", f.store ? [f.store] : [], f.store);
  const form = h(
    "form",
    {
      class: "toolbar",
      role: "search",
      onsubmit: (e) => {
        e.preventDefault();
        const get = (id) => document.getElementById(id).value.trim();
        state.filters = {
          store: get("orders-store"),
          shop_status: get("orders-shop-status"),
          courier_status: get("orders-courier-status"),
          invoice_state: get("orders-invoice-state"),
          q: search.value.trim(),
        };
        state.cursors = [];
        state.cursor = null;
        last = null;
        refreshNow();
      },
    },
    h("div", { class: "field" }, h("label", { for: "orders-q" }, "Search"), search),
    storeField,
    choice("orders-shop-status", "Shop status", SHOP_STATUSES, f.shop_status),
    choice("orders-courier-status", "Courier status", COURIER_STATUSES, f.courier_status),
    choice("orders-invoice-state", "Invoice", INVOICE_STATES, f.invoice_state),
    h("button", { type: "submit", class: "btn btn-primary" }, "Show"),
  );
  const listBody = h("div", { id: "orders-list" });
  const statsBody = h("div", { id: "orders-stats" });
  replaceContent(
    root,
    pageHead("Orders", h("a", { href: "#/orders/stuck" }, "Stuck orders →")),
    form,
    section("Orders", listBody),
    section("Per store", statsBody),
  );
  let last = null;
  let lastStats = null;
  let refreshNow = () => {};

  const pager = (page) =>
    h(
      "div",
      { class: "toolbar" },
      h("button", {
        type: "button",
        class: "btn",
        disabled: !state.cursors.length,
        onclick: () => {
          state.cursor = state.cursors.pop() || null;
          last = null;
          refreshNow();
        },
      }, "← Newer"),
      h("button", {
        type: "button",
        class: "btn",
        disabled: !page.next_cursor,
        onclick: () => {
          state.cursors.push(state.cursor);
          state.cursor = page.next_cursor;
          last = null;
          refreshNow();
        },
      }, "Older →"),
    );

  const ordersTable = (orders) =>
    h(
      "table",
      { class: "orders-list" },
      h("thead", {}, h("tr", {}, ["Reference", "Store", "Shop", "Courier", "Invoice", "Total", "Method", "Customer", "Phone", "Imported"].map((t) => h("th", { class: t === "Total" ? "num" : "" }, t)))),
      h(
        "tbody",
        {},
        orders.map((o) =>
          h(
            "tr",
            { dataset: { reference: o.reference } },
            h("td", {}, orderLink(o.reference)),
            h("td", {}, o.store),
            h("td", {}, o.shop_status),
            h("td", { title: o.courier_label || "" }, o.courier_status || "—"),
            h("td", {}, o.invoice_state),
            h("td", { class: "num" }, `${o.total} ${o.currency || ""}`),
            h("td", {}, o.payment_method),
            h("td", {}, o.customer_name || "—"),
            h("td", { class: "mono" }, o.phone || "—"),
            h("td", {}, timeAgo(o.imported_at)),
          ),
        ),
      ),
    );

  async function sync(store) {
    const path = store ? `${API}/stores/${encodeURIComponent(store)}/sync` : `${API}/stores/sync`;
    const r = await request("POST", path, {});
    if (!r.ok) return flash("bad", `Sync failed: ${(r.data && r.data.error) || `HTTP ${r.status}`}`);
    const results = (r.data && r.data.stores) || [];
    const started = results.filter((s) => s.job_id).map((s) => s.store);
    const skipped = results.filter((s) => !s.job_id).map((s) => `${s.store}: ${s.skipped}`);
    flash(skipped.length && !started.length ? "warn" : "ok", started.length ? `Import enqueued for ${started.join(", ")}.` : "No import enqueued.", skipped.map((s) => h("p", {}, s)));
  }

  const kv = (m) => Object.entries(m || {}).map(([k, v]) => `${k} ${fmtNum(v)}`).join(", ") || "—";
  const statsTable = (stats) =>
    h(
      "table",
      { class: "orders-stats" },
      h("thead", {}, h("tr", {}, ["Store", "Orders", "Revenue", "Shop", "Courier", "Invoice", "Last import", "Last tracking", ""].map((t) => h("th", {}, t)))),
      h(
        "tbody",
        {},
        (stats.stores || []).map((s) =>
          h(
            "tr",
            { dataset: { store: s.store } },
            h("td", { class: "mono" }, s.store),
            h("td", { class: "num" }, fmtNum(s.orders)),
            h("td", { class: "num" }, s.revenue),
            h("td", {}, kv(s.by_shop_status)),
            h("td", {}, kv(s.by_courier_status)),
            h("td", {}, kv(s.by_invoice_state)),
            h("td", {}, s.last_import_at ? timeAgo(s.last_import_at) : "never"),
            h("td", {}, s.last_tracking_at ? timeAgo(s.last_tracking_at) : "never"),
            h("td", {}, h("button", { type: "button", class: "btn", onclick: () => sync(s.store) }, "Sync")),
          ),
        ),
        h(
          "tr",
          { class: "total" },
          h("td", {}, "All"),
          h("td", { class: "num" }, fmtNum(stats.orders)),
          h("td", { class: "num" }, stats.revenue),
          h("td", {}, kv(stats.by_shop_status)),
          h("td", {}, kv(stats.by_courier_status)),
          h("td", {}, kv(stats.by_invoice_state)),
          h("td", {}),
          h("td", {}),
          h("td", {}, h("button", { type: "button", class: "btn btn-primary", onclick: () => sync(null) }, "Sync all")),
        ),
      ),
    );

  const view = {
    async refresh() {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
      if (state.cursor) params.set("cursor", state.cursor);
      const [r, s] = await Promise.all([request("GET", `${API}/orders?${params}`), request("GET", `${API}/orders/stats`)]);
      const statsKey = JSON.stringify([s.status, s.data]);
      if (statsKey !== lastStats) {
        lastStats = statsKey;
        if (s.notServed) replaceContent(statsBody, unavailable("Order statistics", "/orders/stats"));
        else if (!s.ok) replaceContent(statsBody, errorBox((s.data && s.data.error) || `HTTP ${s.status}`));
        else {
          replaceContent(statsBody, statsTable(s.data || {}));
          // The store choices are the stores with orders.
          const select = document.getElementById("orders-store");
          const current = select.value;
          replaceContent(select, h("option", { value: "" }, "any"), (s.data.stores || []).map((st) => h("option", { value: st.store, selected: st.store === current }, st.store)));
        }
      }
      const key = JSON.stringify([r.status, r.data]);
      if (key === last) return;
      last = key;
      if (r.notServed) return replaceContent(listBody, unavailable("The orders list", "/orders"));
      if (!r.ok) return replaceContent(listBody, errorBox((r.data && r.data.error) || `HTTP ${r.status}`));
      const page = r.data || { orders: [] };
      replaceContent(listBody, page.orders.length ? ordersTable(page.orders) : h("p", { class: "empty" }, "No orders match."), pager(page));
    },
  };
  refreshNow = () => view.refresh().catch((e) => flash("bad", e.message));
  return view;
}
