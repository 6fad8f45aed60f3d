// Any JSON value the API returns, shown legibly. The order trace and the
// stuck-orders report use it for fields the page has no special layout for.

import { h } from "./dom.js";
import { fmtNum, jobLink, orderLink, timeAgo } from "./format.js";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/;

// Render any JSON value legibly: tables for lists of objects, key/value
// lists for objects, times as relative times, references as links.
export function anyValue(v, emptyText, key) {
  if (v === null || v === undefined) return h("span", { class: "muted" }, emptyText || "—");
  if (Array.isArray(v)) {
    if (!v.length) return h("p", { class: "empty" }, emptyText || "None.");
    if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) return objectTable(v);
    return h("ul", {}, v.map((x) => h("li", {}, anyValue(x))));
  }
  if (typeof v === "object") return kvList(Object.entries(v));
  if (typeof v === "string" && ISO_TIME.test(v)) return timeAgo(v);
  if (key && /(^|_)(reference|order_ref)$/.test(key)) return orderLink(String(v));
  if (key && /(^|_)job(_id)?$|^replay(ed_as|_of)$/.test(key) && /^[0-9a-f-]{36}$/i.test(String(v))) return jobLink(String(v));
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return fmtNum(v);
  return String(v);
}

export function kvList(entries) {
  if (!entries.length) return h("span", { class: "muted" }, "—");
  return h("dl", { class: "kv" }, entries.map(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, anyValue(v, undefined, k))]));
}

function objectTable(rows) {
  const columns = [];
  for (const row of rows) for (const k of Object.keys(row)) if (!columns.includes(k)) columns.push(k);
  const shown = columns.slice(0, 10);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, shown.map((c) => h("th", {}, c.replace(/_/g, " "))))),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          shown.map((c) => {
            const v = row[c];
            const complex = v && typeof v === "object";
            return h("td", { class: typeof v === "number" ? "num" : "" }, complex ? h("code", {}, JSON.stringify(v)) : anyValue(v, "", c));
          }),
        ),
      ),
    ),
  );
}
