// Building the page with DOM calls (never innerHTML with data), so nothing a
// job, an order or an error message contains can run as script.

// h("a", { href, class, dataset, onclick }, ...children): one element.
// Props that are null, undefined or false are left out; true sets an empty
// attribute; "on…" props add event listeners.
export function h(tag, props, ...kids) {
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

// Append children (nested arrays flattened; null, undefined and false
// skipped; anything that is not a node becomes text).
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
export function replaceContent(el, ...kids) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : null;
  clear(el);
  append(el, kids);
  if (key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}
