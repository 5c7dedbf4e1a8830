// MNIST Training Monitor page, the entry module: it builds each panel, loads the settings
// (GET /config), then starts polling GET /training_status every 3 s and wires the answers to the
// panels that show them.

import { updateCurves, setupCharts } from "./charts.js";
import { $ } from "./common.js";
import { applyExploreFromUrl, renderExploreRuns, setupCanvas } from "./draw.js";
import { applySettings, setupForm } from "./form.js";
import { applyCompareFromUrl, refreshCurveRuns, renderRuns, setupHistory } from "./history.js";
import { renderImages, setupImages } from "./images.js";
import { setupNotifications, showNote } from "./notify.js";
import { loadSettings, setConnection, startPolling } from "./poll.js";
import { state } from "./state.js";
import { followRuns, refreshRunButtons, renderStatus, renderSweepLink, renderUnreachable, setupStatus } from "./status.js";
import { applyRunFromUrl } from "./runactions.js";
import { refreshClass, refreshMe, setupClass } from "./classroom.js";
import { refreshBoard } from "./board.js";
import { currentView } from "./url.js";
import { mayAct } from "./owners.js";
import { applySweepFromUrl, setupSweeps, updateSweeps } from "./sweeps.js";
import { refreshSweepBuilder, setupSweepBuilder } from "./sweepbuild.js";
import { setTrainBadge, setupViews, showView } from "./views.js";

function keepInView(change) {
  // Runs change() and, if it moved the panel the user is reading (the one at the middle of the
  // window), scrolls by as much in the same frame: a run that starts without a click here fills in
  // the status cards and each model's pictures above the drawing canvas, which Chromium's own
  // scroll anchoring let move 2,800 px (a first run of four models, scrolled to the canvas).
  if (window.scrollY === 0) { change(); return; } // at the top, the page grows below what is read
  const middle = window.innerHeight / 2;
  const anchor = [...document.querySelectorAll("main .panel")].find((p) => {
    const box = p.getBoundingClientRect();
    return box.top <= middle && box.bottom > middle;
  });
  const before = anchor ? anchor.getBoundingClientRect().top : 0;
  change();
  const moved = anchor ? anchor.getBoundingClientRect().top - before : 0;
  if (Math.abs(moved) >= 1) window.scrollBy(0, moved);
}

function showStatus(status) {
  // A new status (of the live run or of the one opened from the history).
  if (followRuns(status)) return; // not the run to show: the next poll, at once, brings it
  keepInView(() => { renderStatus(status); renderImages(status); });
}

function showRuns(body) {
  // A new GET /runs answer: the history, the buttons that depend on the other runs, the runs
  // Explore can read a drawing with, and how many train (beside the Train link).
  keepInView(() => { renderRuns(body); refreshRunButtons(); renderExploreRuns(); });
  setTrainBadge(body.runs.filter((r) => state.settings.states.active.includes(r.state) && mayAct(r.owner)).length);
}

function applyAddress() {
  // The address changed (a link, back or forward): the view it names, showing what it names.
  const view = showView();
  if (view === "class") refreshClass(true);
  if (view === "board") refreshBoard(true);
  if (view === "sweeps") refreshSweepBuilder(); // from the Train form as it is now
  applyRunFromUrl();
  applyCompareFromUrl();
  applySweepFromUrl();
  applyExploreFromUrl();
}

async function afterPoll() {
  // After the status: the curves are never older than the numbers beside them.
  keepInView(refreshCurveRuns);
  await updateCurves(keepInView);
  await updateSweeps();
  renderSweepLink(); // a trial's sweep by name, once the sweeps' names have come
  if (currentView() === "class") await refreshClass();
  if (currentView() === "board") await refreshBoard();
  if (state.me && currentView() === "runs") await refreshMe();
}

function takeTokenFromAddress() {
  // The first visit's ?token= is now in a cookie (in a class: a personal link, signed in by
  // setupClass): out of the address bar and the history; the token, for setupClass.
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token === null) return null;
  url.searchParams.delete("token");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  return token;
}

async function init() {
  // What needs no settings is built at once, before the first paint, so nothing jumps in later.
  const linkToken = takeTokenFromAddress();
  setupCanvas();
  setupImages();
  setupHistory();
  setupSweeps();
  setupSweepBuilder();
  setupNotifications();
  $("status-note-dismiss").addEventListener("click", () => showNote(""));
  setupForm();
  setupStatus();
  const settings = await loadSettings();
  if (!(await setupClass(settings, linkToken))) return; // in a class, a browser that is nobody yet joins first
  applySettings(settings);
  refreshSweepBuilder();
  setupCharts(); // a chart box per chart of the metric kinds the settings list
  setConnection("");
  setupViews();
  applyRunFromUrl(); // a bookmarked run opened (followed live if it trains)
  applyExploreFromUrl();
  window.addEventListener("popstate", applyAddress); // back and forward, and the page's own links
  startPolling({ showStatus, showRuns, afterPoll, showDown: renderUnreachable });
}

document.addEventListener("DOMContentLoaded", init);
