// Replaying and discarding failed jobs: confirm, POST, report the result.

import { API, loadSession, request } from "./api.js";
import { h } from "./dom.js";
import { fmtNum, jobLink, plural, shortId } from "./format.js";
import { confirmDialog, flash } from "./ui.js";

// The failed-jobs filters a group action applies to, as the request body.
export function filterBody(filters) {
  const body = {};
  for (const key of ["kind", "store", "grep"]) if (filters[key]) body[key] = filters[key];
  return body;
}

// Replay or discard `selection` ({fingerprint} or {ids}) after confirming.
// `count` and `what` describe it for the dialog; `onConfirmed` runs once
// the operator said yes, before the request.
export async function resolveJobs(action, selection, count, what, onConfirmed) {
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
