// Failed jobs, grouped by fingerprint: filter, expand a group, replay or
// discard it.

import { API, load } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { badge, fmtNum, jobLink, orderLink, plural, timeAgo } from "./format.js";
import { poll } from "./poll.js";
import { filterBody, resolveJobs } from "./resolve.js";
import { pageHead, unavailable, updateFailedCount } from "./ui.js";

const KINDS = ["import_orders", "fetch_tracking", "refresh_status", "create_invoice", "send_sms"];

// The filters and the expanded groups are kept across visits to the page.
const failedFilters = { kind: "", store: "", grep: "" };
const expandedGroups = new Set();

export function failedView(root) {
  const list = h("div", { class: "panel" });
  const summary = h("span", { class: "muted", id: "failed-summary" });
  const kind = h(
    "select",
    { id: "filter-kind", "data-key": "filter-kind" },
    h("option", { value: "" }, "All kinds"),
    KINDS.map((k) => h("option", { value: k, selected: failedFilters.kind === k }, k)),
  );
  const store = h("input", { id: "filter-store", type: "text", placeholder: "e.g. ALPH", size: 8, value: failedFilters.store, autocomplete: "off" });
  const grep = h("input", { id: "filter-grep", type: "search", placeholder: "message, class or order", size: 28, value: failedFilters.grep, autocomplete: "off" });
  let debounce = null;
  const onFilter = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      failedFilters.kind = kind.value;
      failedFilters.store = store.value.trim().toUpperCase();
      failedFilters.grep = grep.value.trim();
      last = null;
      poll();
    }, 250);
  };
  kind.addEventListener("change", onFilter);
  store.addEventListener("input", onFilter);
  grep.addEventListener("input", onFilter);
  replaceContent(
    root,
    pageHead("Failed jobs", summary),
    h(
      "form",
      { class: "toolbar", role: "search", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "filter-kind" }, "Kind"), kind),
      h("div", { class: "field" }, h("label", { for: "filter-store" }, "Store"), store),
      h("div", { class: "field" }, h("label", { for: "filter-grep" }, "Search"), grep),
    ),
    list,
  );
  let last = null;
  const jobsCache = new Map(); // fingerprint -> jobs (array) of an expanded group
  const busy = new Set(); // fingerprints with an action in progress

  const query = () => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(failedFilters)) if (v) p.set(k, v);
    return p;
  };

  async function act(action, group) {
    const what = `${plural(Number(group.count), "job")} of ${group.kind} · ${group.error_class}`;
    try {
      await resolveJobs(action, { fingerprint: group.fingerprint, ...filterBody(failedFilters) }, Number(group.count), what, () => {
        busy.add(group.fingerprint);
        render();
      });
    } finally {
      busy.delete(group.fingerprint);
      last = null;
      await poll();
    }
  }

  let groups = [];
  function render() {
    const open = groups.reduce((n, g) => n + Number(g.count), 0);
    summary.textContent = groups.length ? `${plural(open, "open job")} in ${plural(groups.length, "group")}` : "";
    if (!groups.length) {
      const filtered = Object.values(failedFilters).some(Boolean);
      replaceContent(
        list,
        h(
          "div",
          { class: "empty empty-ok", id: "failed-empty" },
          h("strong", {}, filtered ? "No failed jobs match these filters." : "No failed jobs."),
          filtered ? "" : "Everything that failed has been replayed or discarded.",
        ),
      );
      return;
    }
    replaceContent(
      list,
      h(
        "table",
        { class: "groups" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, h("span", { class: "sr-only" }, "Expand")),
            h("th", { class: "num" }, "Jobs"),
            h("th", {}, "Kind"),
            h("th", {}, "Error"),
            h("th", {}, "Sample message"),
            h("th", {}, "Stores"),
            h("th", {}, "First failed"),
            h("th", {}, "Last failed"),
            h("th", { class: "num" }, "Actions"),
          ),
        ),
        h("tbody", {}, groups.map((g) => groupRows(g))),
      ),
    );
  }

  function groupRows(g) {
    const fp = g.fingerprint;
    const expanded = expandedGroups.has(fp);
    const isBusy = busy.has(fp);
    const rows = [
      h(
        "tr",
        { class: "group-row", dataset: { fingerprint: fp } },
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              class: "expand",
              "aria-expanded": String(expanded),
              "aria-label": `${expanded ? "Hide" : "Show"} the jobs of group ${fp}`,
              "data-key": `expand-${fp}`,
              onclick: () => {
                if (expanded) expandedGroups.delete(fp);
                else expandedGroups.add(fp);
                last = null;
                poll();
              },
            },
            h("span", { class: "chevron" }, "▸"),
          ),
        ),
        h("td", { class: "num group-count" }, fmtNum(Number(g.count))),
        h("td", {}, h("span", { class: "mono" }, g.kind)),
        h("td", {}, badge(g.error_class, "badge-bad")),
        h("td", { class: "message", title: g.sample_message }, g.sample_message),
        h("td", { class: "mono" }, (g.stores || []).join(", ") || "—"),
        h("td", { class: "nowrap" }, timeAgo(g.first_failed_at)),
        h("td", { class: "nowrap" }, timeAgo(g.last_failed_at)),
        h(
          "td",
          {},
          h(
            "div",
            { class: "actions" },
            h(
              "button",
              { type: "button", class: "btn btn-small replay-group", disabled: isBusy, "data-key": `replay-${fp}`, onclick: () => act("replay", g) },
              isBusy ? "Working…" : "Replay",
            ),
            h(
              "button",
              { type: "button", class: "btn btn-small btn-danger discard-group", disabled: isBusy, "data-key": `discard-${fp}`, onclick: () => act("discard", g) },
              "Discard",
            ),
          ),
        ),
      ),
    ];
    if (expanded) rows.push(h("tr", { class: "group-jobs" }, h("td", { colspan: 9 }, groupJobs(g, jobsCache.get(fp)))));
    return rows;
  }

  function groupJobs(g, jobs) {
    if (!jobs) return h("p", { class: "muted" }, "Loading jobs…");
    return [
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Job", "Store", "Order", "Failed", "Outcome"].map((t) => h("th", {}, t)),
            h("th", { class: "num" }, "Attempts"),
            h("th", { class: "num" }, "HTTP"),
            h("th", {}, "Message"),
          ),
        ),
        h(
          "tbody",
          {},
          jobs.map((j) =>
            h(
              "tr",
              { class: "failed-job", dataset: { job: j.job_id } },
              h("td", {}, jobLink(j.job_id)),
              h("td", { class: "mono" }, j.store || "—"),
              h("td", {}, orderLink(j.order_ref)),
              h("td", { class: "nowrap" }, timeAgo(j.failed_at)),
              h("td", {}, badge(j.outcome)),
              h("td", { class: "num" }, fmtNum(j.attempts)),
              h("td", { class: "num" }, j.http_status || "—"),
              h("td", { class: "message", title: j.error_message }, j.error_message),
            ),
          ),
        ),
      ),
      Number(g.count) > jobs.length ? h("p", { class: "muted" }, `Showing the newest ${fmtNum(jobs.length)} of ${fmtNum(Number(g.count))}.`) : "",
    ];
  }

  return {
    async refresh() {
      const data = await load(`${API}/jobs/failed?${query()}`);
      if (data === null) {
        replaceContent(list, unavailable("The failed-jobs list", "/jobs/failed"));
        return;
      }
      groups = data;
      updateFailedCount(Object.values(failedFilters).some(Boolean) ? null : groups);
      const shown = new Set(groups.map((g) => g.fingerprint));
      for (const fp of [...expandedGroups]) if (!shown.has(fp)) expandedGroups.delete(fp);
      await Promise.all(
        [...expandedGroups].map(async (fp) => {
          const p = query();
          p.set("ungrouped", "true");
          p.set("fingerprint", fp);
          p.set("limit", "100");
          jobsCache.set(fp, await load(`${API}/jobs/failed?${p}`));
        }),
      );
      const key = JSON.stringify([groups, [...expandedGroups].map((fp) => jobsCache.get(fp)), [...busy]]);
      if (key !== last) render();
      last = key;
    },
  };
}
