// Pauses: what is paused (a store, a provider account or a job kind), who
// paused it, when and why, each with Resume; and a form to pause one. Paused
// jobs wait (parked, no attempt used) until the resume. The form is built
// once and only its choices follow the data, so the overview's refresh never
// wipes what the operator is typing.

import { API, request } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { timeAgo } from "./format.js";
import { flash } from "./ui.js";

const SCOPES = [
  ["store", "Store"],
  ["account", "Provider account"],
  ["kind", "Job kind"],
];

// `onChange` is called after a pause or a resume, to refresh the page.
export function pausesPanel(onChange) {
  const list = h("div", { id: "pauses-list" });
  const scope = h(
    "select",
    { id: "pause-scope", "data-key": "pause-scope", "aria-label": "What to pause" },
    SCOPES.map(([value, label]) => h("option", { value }, label)),
  );
  const name = h("select", { id: "pause-name", "data-key": "pause-name", "aria-label": "Which one" });
  const reason = h("input", { id: "pause-reason", type: "text", placeholder: "why (optional)", size: 28, maxlength: 200, autocomplete: "off" });
  const submit = h("button", { type: "submit", id: "pause-submit", class: "btn btn-small btn-danger" }, "Pause");
  let choices = { store: [], account: [], kind: [] };
  let shownKey = "";
  const fillNames = () => {
    const options = choices[scope.value] || [];
    const key = JSON.stringify([scope.value, options]);
    if (key === shownKey) return;
    const keep = name.value;
    replaceContent(name, options.map((o) => h("option", { value: o, selected: o === keep }, o)));
    shownKey = key;
  };
  scope.addEventListener("change", fillNames);

  const act = async (action, scopeName, target, body) => {
    const r = await request("POST", `${API}/${action}`, { [scopeName]: target, ...body });
    if (!r.ok) {
      flash("bad", `${action === "pause" ? "Pause" : "Resume"} failed: ${(r.data && r.data.error) || `HTTP ${r.status}`}`);
      return;
    }
    if (action === "pause") {
      flash(
        "ok",
        r.data && r.data.already_paused
          ? `${scopeName} ${target} was already paused; its first pause stands.`
          : `Paused ${scopeName} ${target}: its jobs wait, using no attempts, until you resume it.`,
      );
    } else {
      flash("ok", `Resumed ${scopeName} ${target}: its waiting jobs run within seconds.`);
    }
    await onChange();
  };

  const form = h(
    "form",
    {
      class: "pause-form",
      id: "pause-form",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!name.value) return flash("bad", "Choose what to pause.");
        submit.disabled = true;
        try {
          const body = { by: "dashboard" };
          if (reason.value.trim()) body.reason = reason.value.trim();
          await act("pause", scope.value, name.value, body);
          reason.value = "";
        } finally {
          submit.disabled = false;
        }
      },
    },
    scope,
    name,
    reason,
    submit,
  );

  const element = h("div", { class: "panel" }, list, form);
  return {
    element,
    // `paused`: GET /paused (null when not served); `stores`: GET /stores;
    // `queues`: GET /queues (its kinds).
    update(paused, stores, queues) {
      choices = {
        store: ((stores && stores.stores) || []).map((s) => s.store),
        account: ((stores && stores.accounts) || []).map((a) => `${a.role}:${a.account}`),
        kind: [...new Set(((queues && queues.queues) || []).map((q) => q.kind))].sort(),
      };
      fillNames();
      replaceContent(list, pausesTable(paused, (p) => act("resume", p.scope, p.name, {})));
    },
  };
}

function pausesTable(paused, resume) {
  if (!paused) return h("p", { class: "muted" }, "Pauses are not served by this server.");
  const rows = paused.paused || [];
  if (!rows.length) return h("p", { class: "empty", id: "pauses-none" }, "Nothing is paused.");
  return h(
    "table",
    { class: "pauses" },
    h("thead", {}, h("tr", {}, ["Paused", "By", "Since", "Why", ""].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      rows.map((p) =>
        h(
          "tr",
          { class: "row-warn", dataset: { pause: `${p.scope}:${p.name}` } },
          h("td", {}, h("span", { class: "muted" }, p.scope), " ", h("strong", { class: "mono" }, p.name)),
          h("td", { class: "mono" }, p.by),
          h("td", { class: "nowrap" }, timeAgo(p.at)),
          h("td", {}, p.reason || h("span", { class: "muted" }, "—")),
          h(
            "td",
            {},
            h(
              "button",
              { type: "button", class: "btn btn-small resume", "data-key": `resume-${p.scope}-${p.name}`, onclick: () => resume(p) },
              "Resume",
            ),
          ),
        ),
      ),
    ),
  );
}
