// Keeping the current view fresh: one refresh every POLL_MS while the page
// is visible, and the "Live" indicator in the top bar saying how that goes.

const POLL_MS = 2000;

const live = { lastOk: null, error: null, hidden: document.hidden };
let view = null; // { refresh() }
let pollTimer = null;
let generation = 0; // bumps on every view change; stale responses are dropped

export function renderLive() {
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

// The page could not start (no session): say so in the indicator.
export function connectionFailed(message) {
  live.error = message;
  renderLive();
}

// Replace the current view with make()'s and refresh it at once.
export function showView(make) {
  generation += 1;
  view = make();
  poll();
}

// One refresh of the current view, then the next one POLL_MS later.
// Refreshes never overlap: asking for one while another runs (a click, a
// route change) runs it right after.
let inflight = null;
let again = false;

export async function poll() {
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

// Polling pauses while the page is hidden and resumes when it shows again.
export function visibilityChanged() {
  live.hidden = document.hidden;
  renderLive();
  if (!document.hidden) poll();
}
