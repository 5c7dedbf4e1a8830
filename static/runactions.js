// What the page does to one run of the history: open it, star it or write a note on it, resume,
// cancel or delete it, and fill the form with its settings.

import { $, getJSON, send } from "./common.js";
import { fillForm, showFormError } from "./form.js";
import { announce, showNote } from "./notify.js";
import { pollNow } from "./poll.js";
import { state } from "./state.js";
import { setUrl, urlParam } from "./url.js";

export function showHistoryError(message) {
  $("history-error").textContent = message;
  $("history-error").hidden = !message;
}

export function openRun(runId) {
  // The run that is training is followed live; any other run is shown as it ended.
  const run = state.runs.find((r) => r.run_id === runId);
  const training = run && state.settings.states.active.includes(run.state);
  state.viewedRunId = training ? null : runId;
  state.followedRunId = training && state.workers > 1 ? runId : null; // with several at once: this one
  state.followedByPage = false;
  setUrl({ run: state.viewedRunId });
  state.lastStatusText = "";
  showFormError("");
  pollNow();
  $("status-panel").scrollIntoView({ behavior: "smooth", block: "start" });
}

export function applyRunFromUrl() {
  // ?run=<id>: that run shown as it ended (back and forward, a bookmark); none: the live run.
  const runId = urlParam("run");
  if (runId === state.viewedRunId) return;
  state.viewedRunId = runId;
  state.followedRunId = null;
  state.followedByPage = false;
  state.lastStatusText = "";
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
    state.viewedRunId = null; // follow it live
    state.followedRunId = state.workers > 1 ? runId : null; // with several at once: this one
    state.followedByPage = false;
    setUrl({ run: null });
    $("status-panel").scrollIntoView({ behavior: "smooth", block: "start" });
  }
}

export async function deleteRun(runId) {
  if (!window.confirm(`Delete run ${runId} and all its files (metrics, pictures, checkpoints)? This cannot be undone.`)) return;
  let message = "";
  try {
    const response = await fetch(`/runs/${encodeURIComponent(runId)}`, { method: "DELETE" });
    if (!response.ok) message = (await response.json()).error || `HTTP ${response.status}`;
  } catch (err) {
    message = "the server is not reachable; try again when it is back";
  }
  showHistoryError(message);
  if (!message && (state.viewedRunId === runId || state.followedRunId === runId)) { // it was the run shown
    state.viewedRunId = state.followedRunId = null;
    state.followedByPage = false;
    state.lastStatusText = "";
    setUrl({ run: null }, false);
    showNote(`Run ${runId} deleted: showing the live run.`);
  } else if (!message) {
    announce(`Run ${runId} deleted.`);
  }
  pollNow();
}

export async function rerunSettings(runId) {
  try {
    fillForm(await getJSON(`/runs/${encodeURIComponent(runId)}/config`));
    showFormError("");
    $("setup").scrollIntoView({ behavior: "smooth", block: "start" });
    announce(`Form filled with the settings of run ${runId}`);
  } catch (err) {
    showFormError(`could not load the settings of run ${runId}: ${err.message}`);
  }
}
