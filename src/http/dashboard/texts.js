// Texts of unknown fate: the gateway timed out, or a worker died while
// sending. They are never re-sent by themselves; an operator may resend one,
// or all, on purpose (a new send_sms job, recorded with who asked).

import { API, loadSession, request } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { fmtNum, jobLink, orderLink, plural, timeAgo } from "./format.js";
import { confirmDialog, errorBox, flash, pageHead, unavailable } from "./ui.js";
import { poll } from "./poll.js";

export function textsView(root) {
  const body = h("div", {});
  const actions = h("div", { class: "toolbar" });
  replaceContent(root, pageHead("Texts of unknown fate"), actions, body);
  let last = null;
  return {
    async refresh() {
      const r = await request("GET", `${API}/sms/unknown`);
      const key = JSON.stringify([r.status, r.data]);
      if (key === last) return;
      last = key;
      if (r.notServed) return replaceContent(body, unavailable("Texts of unknown fate", "/sms/unknown"));
      if (!r.ok) return replaceContent(body, errorBox((r.data && r.data.error) || `HTTP ${r.status}`));
      const texts = r.data || [];
      replaceContent(
        actions,
        texts.length
          ? h("button", { type: "button", class: "btn", onclick: () => resend({ all: true }, texts.length) }, `Resend all ${fmtNum(texts.length)}`)
          : "",
      );
      replaceContent(body, texts.length ? table(texts) : h("p", { class: "empty" }, "No text of unknown fate: every text was sent, or failed visibly."));
    },
  };
}

function table(texts) {
  return h(
    "table",
    { class: "texts" },
    h(
      "thead",
      {},
      h("tr", {}, ["Since", "Order", "Store", "Status", "Phone", "Text", "Last job", ""].map((t) => h("th", {}, t))),
    ),
    h(
      "tbody",
      {},
      texts.map((t) =>
        h(
          "tr",
          { dataset: { reference: t.reference, status: t.status } },
          h("td", { class: "nowrap" }, timeAgo(t.claimed_at)),
          h("td", {}, orderLink(t.reference)),
          h("td", { class: "mono" }, t.store),
          h("td", { class: "mono" }, t.status),
          h("td", { class: "mono" }, t.phone),
          h("td", {}, t.message),
          h("td", {}, jobLink(t.job_id)),
          h(
            "td",
            {},
            h("button", { type: "button", class: "btn btn-small", onclick: () => resend({ order: t.reference, status: t.status }, 1) }, "Resend"),
          ),
        ),
      ),
    ),
  );
}

async function resend(selection, count) {
  const confirmed = await confirmDialog({
    title: `Resend ${plural(count, "text")}?`,
    body: [
      h(
        "p",
        {},
        "Their fate is unknown: the customer may already have them, and would then get a second copy. " +
          "Check the gateway's own log first if you can.",
      ),
    ],
    confirmLabel: `Resend ${plural(count, "text")}`,
    danger: true,
  });
  if (!confirmed) return;
  const r = await request("POST", `${API}/sms/resend`, { ...selection, by: "dashboard" }).catch((e) => ({
    ok: false,
    data: { error: e.message },
  }));
  if (r.status === 403) await loadSession().catch(() => {});
  if (!r.ok || !r.data || !r.data.results) {
    flash("bad", `Resend failed: ${(r.data && r.data.error) || `HTTP ${r.status}`}`);
    return;
  }
  const resent = r.data.results.filter((x) => x.result === "resent");
  const skipped = r.data.results.filter((x) => x.result === "skipped");
  flash(
    skipped.length ? "warn" : "ok",
    `Resent ${fmtNum(resent.length)}, skipped ${fmtNum(skipped.length)}`,
    skipped.length ? [h("ul", {}, skipped.slice(0, 8).map((x) => h("li", {}, `${x.reference} ${x.status}: ${x.reason}`)))] : [],
  );
  poll();
}
