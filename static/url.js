// The page's address says what it shows, so a view can be bookmarked, shared and reached with
// back and forward: ?run=<id> (a run opened from the history), ?runs=<a>,<b> (runs compared),
// ?sweep=<id> (a sweep), &sort=<column> (the run table's order; "-" for descending),
// &ticked=<a>,<b> (runs ticked in the table, not compared yet); ?view= names the view (views.js).

export const VIEWS = ["train", "runs", "sweeps", "explore", "board", "class"];
const VIEW_PARAMS = { // what each view's address may hold besides view=
  train: ["run"], runs: ["runs", "sort", "ticked"], sweeps: ["sweep"], explore: ["run"], board: [], class: [],
};
const lastAddress = {}; // view -> the address it had when it was left ("/?view=runs&sort=-best")

export function currentView() {
  const named = urlParam("view");
  if (["board", "class"].includes(named) && !document.querySelector(`#${named}-nav:not([hidden])`)) return "train"; // a class's
  if (VIEWS.includes(named)) return named;
  if (urlParam("runs") || urlParam("sort") || urlParam("ticked")) return "runs";
  if (urlParam("sweep")) return "sweeps";
  return "train";
}

export function addressOf(view, params) {
  const search = new URLSearchParams({ view });
  for (const key of VIEW_PARAMS[view]) if (params[key]) search.set(key, params[key]);
  return `/?${search.toString().replace(/%2C/g, ",")}`;
}

export function rememberAddress() {
  // Called at every change of the address: the header link of the view shown leads back to it.
  const view = currentView();
  const params = Object.fromEntries(new URLSearchParams(window.location.search));
  lastAddress[view] = addressOf(view, params);
  linkViews();
}

function linkViews() {
  for (const link of document.querySelectorAll("a[data-nav]")) link.href = lastAddress[link.dataset.nav] || `/?view=${link.dataset.nav}`;
}

export function forgetRun(runId) {
  // A run that is gone (deleted): no view's header link leads back to it.
  for (const [view, address] of Object.entries(lastAddress)) {
    const params = Object.fromEntries(new URLSearchParams(address.slice(address.indexOf("?"))));
    if (params.run === runId) lastAddress[view] = addressOf(view, { ...params, run: null });
  }
  linkViews();
}

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
  rememberAddress();
}
