// The page's views, each with its own address (/?view=train|runs|sweeps|explore) and a link in the
// header that stays in place: Train (the form, the live status, the curves, the pictures), Runs
// (the history and runs compared), Sweeps (the list and one sweep), Explore (draw a digit, the
// layers of a run). Older addresses name their view by what they show: ?runs= (Runs), ?sweep=
// (Sweeps), &sort= or &ticked= (Runs), ?run= (Train). Each header link keeps the address its view
// had last, so going back to a view finds it as it was left.

import { $ } from "./common.js";
import { addressOf, currentView, rememberAddress, urlParam } from "./url.js";

export function goToView(view, params = {}, push = true) {
  // Another view (or the same with other parameters): a new address, then what back and forward do.
  const url = addressOf(view, params);
  if (url !== window.location.pathname + window.location.search) {
    if (push) window.history.pushState({}, "", url); else window.history.replaceState({}, "", url);
  }
  window.dispatchEvent(new PopStateEvent("popstate"));
  window.scrollTo(0, 0);
}

export function openView(view) {
  // A view as it was left (its header link's address).
  const link = document.querySelector(`a[data-nav="${view}"]`);
  goToView(view, Object.fromEntries(new URL(link.href).searchParams));
}

export function showView() {
  // The view the address names is shown, the others hidden; the curves go where they are read:
  // in Runs while runs are compared, else in Train.
  const view = currentView();
  for (const root of document.querySelectorAll("main [data-view]")) root.hidden = root.dataset.view !== view;
  for (const link of document.querySelectorAll("a[data-nav]")) {
    if (link.dataset.nav === view) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const slot = view === "runs" && urlParam("runs") ? $("runs-charts-slot") : $("train-charts-slot");
  if ($("charts").parentElement !== slot) slot.append($("charts"));
  rememberAddress();
  return view;
}

export function setupViews() {
  // The header's links change the view without loading the page again (a click with a modifier
  // key, or the middle button, still opens a new tab).
  for (const link of document.querySelectorAll("a[data-nav]")) {
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      const url = new URL(link.href);
      goToView(link.dataset.nav, Object.fromEntries(url.searchParams));
    });
  }
  showView();
}

export function setTrainBadge(count) {
  // Runs training now, said beside the Train link in every view: a run that starts by itself
  // never changes the view, the badge says it.
  const badge = $("train-badge");
  const text = count ? `${count} training` : "";
  if (badge.textContent !== text) badge.textContent = text;
}
