// MNIST Training Monitor page, the entry module: it builds each panel, loads the settings
// (GET /config), then starts polling GET /training_status every 3 s and wires the answers to the
// panels that show them.

import { updateCurves, setupCharts } from "./charts.js";
import { $ } from "./common.js";
import { setupCanvas } from "./draw.js";
import { applySettings, setupForm } from "./form.js";
import { applyCompareFromUrl, refreshCurveRuns, renderRuns, setupHistory } from "./history.js";
import { renderImages } from "./images.js";
import { setupNotifications, showNote } from "./notify.js";
import { loadSettings, setConnection, startPolling } from "./poll.js";
import { state } from "./state.js";
import { refreshRunButtons, renderStatus, renderUnreachable, setupStatus } from "./status.js";
import { applyRunFromUrl } from "./runactions.js";
import { applySweepFromUrl, setupSweeps, updateSweeps } from "./sweeps.js";

function showStatus(status) {
  // A new status (of the live run or of the one opened from the history).
  renderStatus(status);
  renderImages(status);
}

function showRuns(body) {
  // A new GET /runs answer: the history, and the buttons that depend on the other runs.
  renderRuns(body);
  refreshRunButtons();
}

async function afterPoll() {
  // After the status: the curves are never older than the numbers beside them.
  refreshCurveRuns();
  await updateCurves();
  await updateSweeps();
}

function forgetTokenInAddress() {
  // The first visit's ?token= is now in a cookie: take it out of the address bar and the history.
  const url = new URL(window.location.href);
  if (!url.searchParams.has("token")) return;
  url.searchParams.delete("token");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
}

async function init() {
  // What needs no settings is built at once, before the first paint, so nothing jumps in later.
  forgetTokenInAddress();
  setupCanvas();
  setupCharts();
  setupHistory();
  setupSweeps();
  setupNotifications();
  $("status-note-dismiss").addEventListener("click", () => showNote(""));
  setupForm();
  setupStatus();
  applySettings(await loadSettings());
  setConnection("");
  state.viewedRunId = new URLSearchParams(window.location.search).get("run"); // a bookmarked run opened
  window.addEventListener("popstate", () => { // back and forward: the views the address names
    applyRunFromUrl();
    applyCompareFromUrl();
    applySweepFromUrl();
  });
  startPolling({ showStatus, showRuns, afterPoll, showDown: renderUnreachable });
}

document.addEventListener("DOMContentLoaded", init);
