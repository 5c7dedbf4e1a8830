// What the page does to one run of the history: open it, star it or write a note on it, resume,
// cancel or delete it, and fill the form with its settings.

import { $, getJSON, send } from "./common.js";
import { fillForm, showFormError } from "./form.js";
import { announce, showNote } from "./notify.js";
import { pollNow } from "./poll.js";
import { state } from "./state.js";
import { currentView, forgetRun, setUrl, urlParam } from "./url.js";
import { goToView, openView } from "./views.js";

export function showHistoryError(message) {
  $("history-error").textContent = message;
  $("history-error").hidden = !message;
}

function showRun(runId) {
  // The Train view shows this run: followed live while it trains, else as it ended; null: the
  // newest run training (or the last one, when none trains).
  const run = state.runs.find((r) => r.run_id === runId);
  const training = Boolean(run && state.settings.states.active.includes(run.state));
  state.viewedRunId = runId && !training ? runId : null;
  state.followedRunId = runId && training ? runId : null;
  state.followedByPage = false;
  state.lastStatusText = "";
}

export function openRun(runId) {
  // Any run, training or not, opens at its own address (/?view=train&run=<id>).
  showRun(runId);
  showFormError("");
  goToView("train", { run: runId });
  pollNow();
}

export function applyRunFromUrl() {
  // ?run=<id> in the Train view (back and forward, a bookmark): that run; none: the newest run.
  if (currentView() !== "train") return;
  const runId = urlParam("run");
  const shown = state.viewedRunId || (state.followedByPage ? null : state.followedRunId);
  if (runId === shown) return;
  showRun(runId);
  pollNow();
}

export async function changeRun(runId, changes) {
  // POST /runs/<id>/meta: the star or the note.
  const result = await send(`/runs/${encodeURIComponent(runId)}/meta`, changes);
  if (!result.ok) showHistoryError(result.data.error || `HTTP ${result.status}`);
  pollNow();
}

export async function runAction(runId, action, said, showError = showHistoryError) {
  // POST /runs/<id>/<action> (resume, cancel); the answer's error, if any, shown by ``showError``.
  const result = await send(`/runs/${encodeURIComponent(runId)}/${action}`, {});
  showError(result.ok ? "" : result.data.error || `HTTP ${result.status}`);
  if (result.ok) announce(said);
  pollNow();
  return result.ok;
}

export async function resumeRun(runId, showError = showHistoryError) {
  if (await runAction(runId, "resume", `Run ${runId} resumed from its last epoch-end checkpoint.`, showError)) {
    state.viewedRunId = null; // follow it live, at its address
    state.followedRunId = runId;
    state.followedByPage = false;
    state.lastStatusText = "";
    goToView("train", { run: runId });
  }
}

export async function deleteRun(runId) {
  if (!window.confirm(`Delete run ${runId} and all its files (metrics, pictures, checkpoints)? This cannot be undone.`)) return;
  const shown = state.viewedRunId === runId || state.followedRunId === runId; // before a poll finds it gone
  let message = "";
  try {
    const response = await fetch(`/runs/${encodeURIComponent(runId)}`, { method: "DELETE" });
    if (!response.ok) message = (await response.json()).error || `HTTP ${response.status}`;
  } catch (err) {
    message = "the server is not reachable; try again when it is back";
  }
  showHistoryError(message);
  if (!message) forgetRun(runId);
  if (!message && shown) { // it was the run shown
    state.viewedRunId = state.followedRunId = null;
    state.followedByPage = false;
    state.lastStatusText = "";
    if (currentView() === "train") setUrl({ run: null }, false);
    showNote(`Run ${runId} deleted: showing the live run.`);
  } else if (!message) {
    announce(`Run ${runId} deleted.`);
  }
  pollNow();
}

export async function handIn(runId, handing) {
  // In a class: hand a finished run in to the teacher (POST), or take it back (DELETE).
  let message = "";
  try {
    const response = await fetch(`/runs/${encodeURIComponent(runId)}/hand_in`, handing
      ? { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" } : { method: "DELETE" });
    if (!response.ok) message = (await response.json()).error || `HTTP ${response.status}`;
  } catch (err) {
    message = "the server is not reachable; try again when it is back";
  }
  showHistoryError(message);
  if (!message) announce(handing ? `Run ${runId} handed in.` : `Run ${runId} withdrawn.`);
  pollNow();
}

export async function rerunSettings(runId) {
  try {
    fillForm(await getJSON(`/runs/${encodeURIComponent(runId)}/config`));
    showFormError("");
    if (currentView() !== "train") openView("train");
    $("setup-fold").open = true;
    $("setup").scrollIntoView({ block: "start" });
    announce(`Form filled with the settings of run ${runId}`);
  } catch (err) {
    showFormError(`could not load the settings of run ${runId}: ${err.message}`);
  }
}
