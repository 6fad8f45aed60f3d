// ordersync dashboard: one page, hash routes, polling /admin/api every 2 s.
//
// Everything is built with DOM calls (never innerHTML with data), so nothing
// a job, an order or an error message contains can run as script; the server's
// Content-Security-Policy forbids inline script and style anyway. The page
// authenticates with its session cookie; state-changing requests carry the
// CSRF token from GET api/session.
"use strict";

(() => {
  const POLL_MS = 2000;
  const API = "../admin/api";
  const KINDS = ["import_orders", "fetch_tracking", "refresh_status", "create_invoice", "send_sms"];

  // Queue lag thresholds (oldest pending job's age), in seconds.
  const LAG_WARN_SECS = 60;
  const LAG_BAD_SECS = 300;
  // Tracking coverage below these fractions is a warning / a problem.
  const COVERAGE_WARN = 0.95;
  const COVERAGE_BAD = 0.8;

  const session = { csrf: null };
  const live = { lastOk: null, error: null, hidden: document.hidden };
  let view = null; // { refresh(), unmount?() }
  let pollTimer = null;
  let generation = 0; // bumps on every route change; stale responses are dropped

  // ---------------------------------------------------------------- DOM

  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    append(el, kids);
    return el;
  }

  function append(el, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.firstChild.remove();
    return el;
  }

  // Replace el's content, keeping keyboard focus on the "same" control
  // (same data-key) so a 2-second refresh never steals it.
  function replaceContent(el, ...kids) {
    const active = document.activeElement;
    const key = active && el.contains(active) ? active.dataset.key : null;
    clear(el);
    append(el, kids);
    if (key) {
      const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus();
    }
  }

  // ---------------------------------------------------------------- formatting

  const numberFormat = new Intl.NumberFormat();
  const fmtNum = (n) => (n === null || n === undefined ? "—" : numberFormat.format(n));

  function fmtAge(secs) {
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

  function fmtDuration(ms) {
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
  // the ticker below keeps the words current between refreshes.
  function timeAgo(iso) {
    if (!iso) return h("span", { class: "muted" }, "—");
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return h(
      "time",
      { datetime: iso, title: `${date.toLocaleString()} (${date.toISOString()})`, "data-rel": "" },
      relative(date, Date.now()),
    );
  }

  setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll("time[data-rel]")) {
      el.textContent = relative(new Date(el.getAttribute("datetime")), now);
    }
    renderLive();
  }, 1000);

  const shortId = (id) => (id ? String(id).slice(0, 8) + "…" + String(id).slice(-4) : "—");
  const jobLink = (id) =>
    id ? h("a", { href: `#/jobs/${encodeURIComponent(id)}`, class: "mono", title: id }, shortId(id)) : "—";
  const orderLink = (ref) =>
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
  const badge = (text, cls) => h("span", { class: `badge ${cls === undefined ? OUTCOME_BADGE[text] || "" : cls}` }, text);

  const plural = (n, one, many) => `${fmtNum(n)} ${n === 1 ? one : many || one + "s"}`;

  // ---------------------------------------------------------------- HTTP

  class NotServed extends Error {}

  function goLogin() {
    window.location.assign("login?reason=expired");
  }

  // GET/POST JSON. Resolves to { status, data }; 401 sends the browser to
  // the login page. `notServed` is true for a 404 that is not one of our
  // JSON errors: the endpoint does not exist on this server (yet).
  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = session.csrf || "";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
        // The page's policy is no-referrer, under which a POST's Origin is
        // "null"; same-origin sends our real origin (to ourselves only), which
        // the server checks.
        referrerPolicy: "same-origin",
      });
    } catch (e) {
      throw new Error(`cannot reach the server (${e.message})`);
    }
    if (response.status === 401) {
      goLogin();
      throw new Error("the session ended");
    }
    const isJson = (response.headers.get("content-type") || "").includes("application/json");
    const data = isJson ? await response.json().catch(() => null) : null;
    const notServed = response.status === 404 && !(data && data.error);
    return { status: response.status, ok: response.ok, data, notServed };
  }

  // GET that must succeed (or be absent): throws on errors, returns null
  // when the endpoint is not served.
  async function load(path) {
    const r = await request("GET", path);
    if (r.notServed) return null;
    if (!r.ok) throw new Error((r.data && r.data.error) || `GET ${path} answered ${r.status}`);
    return r.data;
  }

  async function loadSession() {
    const r = await request("GET", "api/session");
    if (!r.ok || !r.data) throw new Error("could not read the session");
    session.csrf = r.data.csrf_token;
  }

  // ---------------------------------------------------------------- live indicator

  function renderLive() {
    const el = document.getElementById("live-status");
    const text = el.querySelector(".live-text");
    el.classList.remove("is-live", "is-down");
    if (live.error) {
      el.classList.add("is-down");
      text.textContent = `Connection problem: ${live.error} · retrying`;
    } else if (live.hidden) {
      text.textContent = "Paused while hidden";
    } else if (live.lastOk) {
      el.classList.add("is-live");
      const secs = Math.round((Date.now() - live.lastOk) / 1000);
      text.textContent = secs < 3 ? "Live" : `Live · updated ${secs} s ago`;
    }
  }

  // ---------------------------------------------------------------- flash

  function flash(kind, text, details) {
    const el = document.getElementById("flash");
    el.classList.remove("is-bad", "is-warn");
    if (kind === "bad") el.classList.add("is-bad");
    if (kind === "warn") el.classList.add("is-warn");
    el.querySelector(".flash-text").textContent = text;
    replaceContent(el.querySelector(".flash-details"), details || []);
    el.hidden = false;
  }

  document.querySelector("#flash .flash-close").addEventListener("click", () => {
    document.getElementById("flash").hidden = true;
  });

  // A bug in this page, or something the Content-Security-Policy blocked,
  // is shown rather than swallowed, and counted on <body data-page-errors>
  // for the browser test.
  function pageError(text) {
    document.body.dataset.pageErrors = String(Number(document.body.dataset.pageErrors || 0) + 1);
    flash("bad", `The dashboard hit a problem: ${text}. Reload the page; if it persists, report it.`);
  }
  window.addEventListener("error", (e) => pageError(e.message || "script error"));
  window.addEventListener("unhandledrejection", (e) => pageError(String((e.reason && e.reason.message) || e.reason)));
  document.addEventListener("securitypolicyviolation", (e) =>
    pageError(`the security policy blocked ${e.violatedDirective} (${e.blockedURI || "inline"})`),
  );

  // ---------------------------------------------------------------- confirm dialog

  // A real modal: resolves true when the operator confirms.
  function confirmDialog({ title, body, confirmLabel, danger }) {
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

  // ---------------------------------------------------------------- replay / discard

  function filterBody(filters) {
    const body = {};
    for (const key of ["kind", "store", "grep"]) if (filters[key]) body[key] = filters[key];
    return body;
  }

  // Replay or discard `selection` ({fingerprint} or {ids}) after confirming.
  // `count` and `what` describe it for the dialog; `onConfirmed` runs once
  // the operator said yes, before the request.
  async function resolveJobs(action, selection, count, what, onConfirmed) {
    const replay = action === "replay";
    const confirmed = await confirmDialog({
      title: `${replay ? "Replay" : "Discard"} ${plural(count, "failed job")}?`,
      body: [
        h("p", {}, h("strong", {}, what)),
        replay
          ? h(
              "p",
              {},
              `This enqueues ${count === 1 ? "the job" : `all ${fmtNum(count)} jobs`} again with a fresh attempt budget. ` +
                "Jobs whose replay is already pending or done, or that were discarded meanwhile, are skipped.",
            )
          : h(
              "p",
              {},
              `${count === 1 ? "The job leaves" : `The ${fmtNum(count)} jobs leave`} the failed list without running again. ` +
                "This cannot be undone; the ledger keeps the record.",
            ),
      ],
      confirmLabel: `${replay ? "Replay" : "Discard"} ${plural(count, "job")}`,
      danger: !replay,
    });
    if (!confirmed) return null;
    if (onConfirmed) onConfirmed();
    const r = await request("POST", `${API}/jobs/${action}`, { ...selection, by: "dashboard" }).catch((e) => ({
      ok: false,
      data: { error: e.message },
    }));
    if (r.status === 403) await loadSession().catch(() => {});
    if (!r.ok || !r.data || !r.data.summary) {
      flash("bad", `${replay ? "Replay" : "Discard"} failed: ${(r.data && r.data.error) || `HTTP ${r.status}`}`);
      return null;
    }
    const { summary, results } = r.data;
    const verb = replay ? "replayed" : "discarded";
    const text =
      `${replay ? "Replay" : "Discard"} of ${what}: ` +
      `${verb} ${fmtNum(summary.resolved)}, skipped ${fmtNum(summary.skipped)}, errors ${fmtNum(summary.errors)}`;
    const details = [];
    const problems = results.filter((x) => x.result === "skipped" || x.result === "error").slice(0, 8);
    if (problems.length) {
      details.push(
        h(
          "ul",
          {},
          problems.map((x) => h("li", {}, jobLink(x.job_id), ` ${x.result}: ${x.reason || x.error}`)),
        ),
      );
    }
    const replays = results.filter((x) => x.result === "replayed");
    if (replays.length) {
      details.push(
        h(
          "p",
          { class: "replay-links" },
          "Replays: ",
          replays.slice(0, 12).map((x, i) => [
            i ? ", " : "",
            h("a", { href: `#/jobs/${x.new_job}`, class: "mono replay-link", title: x.new_job }, shortId(x.new_job)),
          ]),
          replays.length > 12 ? ` and ${fmtNum(replays.length - 12)} more` : "",
        ),
      );
    }
    flash(summary.errors ? "bad" : summary.skipped ? "warn" : "ok", text, details);
    return r.data;
  }

  // ---------------------------------------------------------------- views

  function pageHead(title, ...extra) {
    return h("div", { class: "page-head" }, h("h1", {}, title), extra);
  }

  function unavailable(what, path) {
    return h(
      "p",
      { class: "unavailable" },
      `${what} is not available on this server: `,
      h("code", {}, `GET /admin/api${path}`),
      " is not served by this version.",
    );
  }

  function errorBox(message) {
    return h("div", { class: "callout callout-bad", role: "alert" }, message);
  }

  // ---- Overview: queues, stores, failures at a glance.

  function overviewView(root) {
    const cards = h("div", { class: "cards" });
    const queues = h("div", { class: "panel" });
    const stores = h("div", { class: "panel" });
    const queuesStamp = h("span", { class: "muted" });
    const storesStamp = h("span", { class: "muted" });
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
    );
    let last = {};
    return {
      async refresh() {
        const [q, s, g] = await Promise.all([
          load(`${API}/queues`),
          load(`${API}/stores`),
          load(`${API}/jobs/failed`),
        ]);
        updateFailedCount(g);
        const key = (x) => JSON.stringify(x);
        if (key(q) !== last.q) {
          replaceContent(queues, q ? queuesTable(q.queues || []) : unavailable("Queue depth", "/queues"));
          replaceContent(queuesStamp, q && q.generated_at ? ["as of ", timeAgo(q.generated_at)] : []);
        }
        if (key(s) !== last.s) {
          replaceContent(stores, s ? storesTable(s.stores || []) : unavailable("Store freshness", "/stores"));
          replaceContent(storesStamp, s && s.generated_at ? ["as of ", timeAgo(s.generated_at)] : []);
        }
        if (key([q, s, g]) !== last.all) replaceContent(cards, summaryCards(q, s, g));
        last = { q: key(q), s: key(s), all: key([q, s, g]) };
      },
    };
  }

  function summaryCards(q, s, groups) {
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
    }
    out.push(card("Open failures", fmtNum(open), open ? "bad" : null, "#/failed"));
    if (s) out.push(card("Stale stores", fmtNum(stale), stale ? "warn" : null));
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
          ["Pending", "Scheduled", "In flight", "Failed", "Oldest pending", "Done/min", "Failed/min", "Retried/min", "Workers"].map((t) =>
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

  function updateFailedCount(groups) {
    if (!Array.isArray(groups)) return;
    const el = document.getElementById("nav-failed-count");
    const open = groups.reduce((n, g) => n + Number(g.count), 0);
    el.textContent = fmtNum(open);
    el.hidden = open === 0;
    el.title = `${plural(open, "open failed job")} in ${plural(groups.length, "group")}`;
  }

  // ---- Failed jobs, grouped by fingerprint.

  const failedFilters = { kind: "", store: "", grep: "" };
  const expandedGroups = new Set();

  function failedView(root) {
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

  // ---- One job's history.

  function jobView(root, id) {
    const body = h("div", {});
    replaceContent(root, pageHead("Job", h("span", { class: "mono muted" }, id)), body);
    if (!id) {
      replaceContent(body, errorBox("No job id in the address: open a job from the failed jobs or an order's trace."));
      return { async refresh() {} };
    }
    let last = null;
    return {
      async refresh() {
        const r = await request("GET", `${API}/jobs/${encodeURIComponent(id)}`);
        const key = JSON.stringify([r.status, r.data]);
        if (key === last) return;
        last = key;
        if (r.notServed) return replaceContent(body, unavailable("Job history", "/jobs/{id}"));
        if (!r.ok) return replaceContent(body, errorBox((r.data && r.data.error) || `HTTP ${r.status}`));
        replaceContent(body, jobHistory(r.data));
      },
    };
  }

  function jobHistory(hist) {
    const job = hist.job || {};
    const runs = hist.runs || [];
    const failed = hist.failed;
    const out = [];
    const facts = h(
      "dl",
      { class: "kv" },
      h("dt", {}, "State"),
      h("dd", { class: "job-state" }, badge(job.state)),
      h("dt", {}, "Kind"),
      h("dd", { class: "mono" }, job.kind),
      h("dt", {}, "Store"),
      h("dd", { class: "mono" }, job.store || "—"),
      h("dt", {}, "Order"),
      h("dd", {}, orderLink(job.order_ref)),
      h("dt", {}, "Enqueued"),
      h("dd", {}, timeAgo(job.enqueued_at), " by ", h("strong", {}, job.source)),
      h("dt", {}, "Attempt budget"),
      h("dd", {}, fmtNum(job.max_attempts)),
      hist.replay_of ? [h("dt", {}, "Replay of"), h("dd", {}, jobLink(hist.replay_of))] : "",
      (hist.replays || []).length
        ? [
            h("dt", {}, "Replayed as"),
            h(
              "dd",
              {},
              h(
                "ul",
                { class: "replays" },
                hist.replays.map(([rid, at]) => h("li", {}, jobLink(rid), " ", h("span", { class: "muted" }, timeAgo(at)))),
              ),
            ),
          ]
        : "",
    );
    const cols = [h("section", { class: "panel panel-pad" }, h("h2", {}, "Job"), h("div", { class: "section" }, facts))];
    if (failed) cols.push(failureBox(failed));
    out.push(h("div", { class: "grid-2" }, cols));
    out.push(
      h(
        "section",
        { class: "section" },
        h("div", { class: "section-head" }, h("h2", {}, "Runs"), h("span", { class: "muted" }, plural(runs.length, "delivery", "deliveries"))),
        h(
          "div",
          { class: "panel" },
          runs.length
            ? h(
                "table",
                { class: "runs timeline" },
                h(
                  "thead",
                  {},
                  h(
                    "tr",
                    {},
                    h("th", { class: "num" }, "Run"),
                    h("th", { class: "num" }, "Attempt"),
                    h("th", {}, "Outcome"),
                    h("th", {}, "Started"),
                    h("th", { class: "num" }, "Took"),
                    h("th", {}, "Worker"),
                    h("th", {}, "Error"),
                    h("th", { class: "num" }, "HTTP"),
                    h("th", {}, "Message"),
                    h("th", {}, "Next run"),
                  ),
                ),
                h(
                  "tbody",
                  {},
                  runs.map((run) =>
                    h(
                      "tr",
                      { class: "run", dataset: { outcome: run.outcome } },
                      h("td", { class: "num" }, run.run),
                      h("td", { class: "num" }, run.attempt),
                      h("td", { class: "outcome" }, badge(run.outcome)),
                      h("td", { class: "nowrap" }, timeAgo(run.started_at)),
                      h("td", { class: "num" }, fmtDuration(new Date(run.finished_at) - new Date(run.started_at))),
                      h("td", { class: "mono" }, run.worker),
                      h("td", {}, run.error_class ? badge(run.error_class, run.outcome === "retry" ? "badge-warn" : "badge-bad") : ""),
                      h("td", { class: "num" }, run.http_status || ""),
                      h("td", { class: "message-full" }, run.error_message || ""),
                      h("td", { class: "nowrap" }, run.next_run_at ? timeAgo(run.next_run_at) : ""),
                    ),
                  ),
                ),
              )
            : h("p", { class: "empty" }, "Not run yet: the job is waiting in its queue."),
        ),
      ),
    );
    return out;
  }

  function failureBox(d) {
    const resolution = d.resolution
      ? [
          badge(d.resolution),
          " by ",
          h("strong", {}, d.resolved_by || "?"),
          " ",
          timeAgo(d.resolved_at),
          d.replayed_as ? [" as ", jobLink(d.replayed_as)] : "",
        ]
      : badge("open", "badge-bad");
    const actions = d.resolution
      ? ""
      : h(
          "div",
          { class: "actions section" },
          h(
            "button",
            { type: "button", class: "btn replay-job", onclick: () => resolveJobs("replay", { ids: [d.job_id] }, 1, `job ${shortId(d.job_id)} (${d.kind})`).then(poll) },
            "Replay this job",
          ),
          h(
            "button",
            { type: "button", class: "btn btn-danger discard-job", onclick: () => resolveJobs("discard", { ids: [d.job_id] }, 1, `job ${shortId(d.job_id)} (${d.kind})`).then(poll) },
            "Discard",
          ),
        );
    return h(
      "section",
      { class: "panel panel-pad failure" },
      h("h2", {}, "Failure"),
      h(
        "dl",
        { class: "kv section" },
        h("dt", {}, "Status"),
        h("dd", {}, resolution),
        h("dt", {}, "Failed"),
        h("dd", {}, timeAgo(d.failed_at), ` after ${plural(d.attempts, "attempt")}`),
        h("dt", {}, "Error"),
        h("dd", {}, badge(d.error_class, "badge-bad"), d.http_status ? ` HTTP ${d.http_status}` : ""),
        h("dt", {}, "Message"),
        h("dd", { class: "message-full" }, d.error_message),
        h("dt", {}, "Fingerprint"),
        h("dd", { class: "mono" }, d.fingerprint),
      ),
      actions,
    );
  }

  // ---- Orders: trace one order, list stuck ones.

  function ordersView(root, reference) {
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
      pageHead("Orders", h("a", { href: "#/orders/stuck" }, "Stuck orders →")),
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

  function section(title, content) {
    return h("section", { class: "section" }, h("div", { class: "section-head" }, h("h2", {}, title)), h("div", { class: "panel" }, content));
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

  const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/;

  // Render any JSON value legibly: tables for lists of objects, key/value
  // lists for objects, times as relative times, references as links.
  function anyValue(v, emptyText, key) {
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

  function kvList(entries) {
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

  function stuckView(root) {
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
  let stuckDays = 3;

  // ---------------------------------------------------------------- routing and polling

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
      case "orders":
        if (parts[1] === "stuck") return { nav: "orders", title: "Stuck orders", make: (root) => stuckView(root) };
        return { nav: "orders", title: parts[1] ? `Order ${parts[1]}` : "Orders", make: (root) => ordersView(root, parts[1]) };
      default:
        return { nav: "overview", title: "Overview", make: (root) => overviewView(root) };
    }
  }

  function mount() {
    generation += 1;
    const r = route();
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === r.nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = `${r.title} · ordersync`;
    const root = document.getElementById("view");
    view = r.make(root);
    poll();
  }

  // One refresh of the current view, then the next one POLL_MS later.
  // Refreshes never overlap: asking for one while another runs (a click, a
  // route change) runs it right after.
  let inflight = null;
  let again = false;

  async function poll() {
    clearTimeout(pollTimer);
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = refreshOnce();
    try {
      await inflight;
    } finally {
      inflight = null;
    }
    if (again) {
      again = false;
      return poll();
    }
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, POLL_MS);
  }

  async function refreshOnce() {
    const mine = generation;
    const current = view;
    if (document.hidden || !current) return;
    try {
      await current.refresh();
      if (mine === generation) {
        live.lastOk = Date.now();
        live.error = null;
      }
    } catch (e) {
      if (mine === generation) live.error = e.message;
    }
    renderLive();
  }

  document.addEventListener("visibilitychange", () => {
    live.hidden = document.hidden;
    renderLive();
    if (!document.hidden) poll();
  });

  window.addEventListener("hashchange", () => {
    mount();
    document.getElementById("view").focus({ preventScroll: true });
  });

  loadSession()
    .then(mount)
    .catch((e) => {
      live.error = e.message;
      renderLive();
    });
})();
