// The page's address says what it shows, so a view can be bookmarked, shared and reached with
// back and forward: ?run=<id> (a run opened from the history), ?runs=<a>,<b> (runs compared),
// ?sweep=<id> (a sweep), &sort=<column> (the run table's order; "-" for descending),
// &ticked=<a>,<b> (runs ticked in the table, not compared yet).

export function urlParam(name) {
  return new URLSearchParams(window.location.search).get(name);
}

export function urlList(name) {
  const value = urlParam(name);
  return value ? value.split(",").map((s) => s.trim()).filter(Boolean) : [];
}

export function setUrl(changes, push = true) {
  // Change some parameters (null or "" removes one); ``push``: a new entry for back and forward
  // (a view), else the current one replaced (the sort, the ticks).
  const params = new URLSearchParams(window.location.search);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") params.delete(key); else params.set(key, value);
  }
  const text = params.toString().replace(/%2C/g, ",");
  const url = text ? `/?${text}` : "/";
  if (url === window.location.pathname + window.location.search) return;
  if (push) window.history.pushState({}, "", url); else window.history.replaceState({}, "", url);
}

export function navigate(changes) {
  // Go to another view: a new address, then what back and forward do (the page shows what it names).
  setUrl(changes, true);
  window.dispatchEvent(new PopStateEvent("popstate"));
}
