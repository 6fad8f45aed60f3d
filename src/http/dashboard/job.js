// One job's history: its facts, its failure (replay or discard it there),
// and every run.

import { API, request } from "./api.js";
import { h, replaceContent } from "./dom.js";
import { badge, fmtDuration, fmtNum, jobLink, orderLink, plural, shortId, timeAgo } from "./format.js";
import { poll } from "./poll.js";
import { resolveJobs } from "./resolve.js";
import { errorBox, pageHead, unavailable } from "./ui.js";

export function jobView(root, id) {
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
  if (failed) cols.push(failureBox(failed, hist.scheduler_note));
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

function failureBox(d, schedulerNote) {
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
      schedulerNote ? [h("dt", {}, "Scheduler"), h("dd", { class: "scheduler-note" }, schedulerNote)] : "",
    ),
    actions,
  );
}
