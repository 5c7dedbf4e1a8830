// The status panel: the run line, the model cards, the downloads, "Resume this run", and the
// Start, Queue and Stop buttons (which follow the run that trains, also while another is shown).

import { $, el, fmt, fmtSeconds, modelColor, send } from "./common.js";
import { formAsTyped, readForms, readSweep, rememberForm, renderSweep, showFormError, showServerError, validateForm } from "./form.js";
import { sweepSize } from "./formcheck.js";
import { CHOICE_NAMES, OPTIMIZER_NAMES } from "./names.js";
import { announce, notifyRunEnd, showNote } from "./notify.js";
import { pollNow } from "./poll.js";
import { resumeRun } from "./runactions.js";
import { state } from "./state.js";
import { currentView, setUrl } from "./url.js";
import { goToView } from "./views.js";
import { mayAct, ownerText } from "./owners.js";

const TITLE = "MNIST Training Monitor";

// ------------------------------------------------------------------ start and stop

async function submitRuns(queueAll) {
  // Start (or with queueAll: queue) the form's run; several values in a field make a sweep
  // (POST /sweeps) whose runs go through the queue, the first at once when a worker is free.
  showFormError("");
  if (!validateForm()) {
    const marked = document.querySelectorAll("#train-form .field-error:not([hidden])").length;
    if (marked) showFormError(`Nothing was started: ${marked === 1 ? "a field is" : `${marked} fields are`} marked above (the cursor is on the first).`, "fields");
    return;
  }
  const sweep = sweepSize() > 1;
  foldForm(true); // at the press: the page moves in answer to it, not later by itself
  $("start").disabled = true;
  $("queue").disabled = true;
  const result = sweep ? await send("/sweeps", readSweep())
    : await send("/start_training", queueAll ? { ...readForms()[0], queue: true } : readForms()[0]);
  $("queue").disabled = false;
  if (state.currentStatus) renderButtons(state.currentStatus); else $("start").disabled = false;
  if (!result.ok) {
    const error = result.data.error || `could not start (HTTP ${result.status})`;
    foldForm(false); // the message points at a field
    if (sweep) showFormError(`The sweep was not made (${error}).`); else showServerError(error, result.data.field);
    if (sweep) $("form-error").scrollIntoView({ block: "nearest" }); // (folding the form moved it)
    state.formErrorIsConnection = Boolean(result.offline);
    return;
  }
  rememberForm(formAsTyped());
  if (sweep) { // the view stays here, on the curves of its first run; the Sweeps view shows it whole
    showNote(`Sweep of ${result.data.trials} runs made: its runs start one per free worker; the Sweeps view shows them all.`);
  } else if (result.data.state === state.settings.states.queued) {
    announce("1 run queued.");
  }
  state.viewedRunId = null;
  state.followedRunId = null; // the newest active run: the one just started
  state.followedByPage = false;
  setUrl({ run: null }, false);
  pollNow();
}

function foldForm(folded) {
  // While a run trains, the form folds to one line under Start, so the status and the curves are
  // on screen; "Models and run settings" opens it again. The buttons stay where they were on
  // screen (scrolled down to Start on a phone, the fold would have thrown the page to the curves).
  const before = $("start").getBoundingClientRect().top;
  $("setup-fold").open = !folded;
  if (window.scrollY > 0) window.scrollBy(0, $("start").getBoundingClientRect().top - before);
}

async function startTraining(event) {
  event.preventDefault();
  await submitRuns(false);
}

async function stopTraining(all) {
  // Stop the run the panel shows when it trains (with several at once, the others go on), else
  // (or with all) every active run.
  $("stop").disabled = true;
  const shown = state.currentStatus;
  const one = !all && shown && shown.run_id && state.settings.states.active.includes(shown.state);
  if (one && state.viewedRunId === null && state.workers > 1) { // shown as it stops
    state.followedRunId = shown.run_id;
    state.followedByPage = false;
  }
  const result = await send(one ? `/runs/${encodeURIComponent(shown.run_id)}/stop` : "/stop_training", {});
  if (!result.ok) showFormError(result.data.error || `could not stop (HTTP ${result.status})`);
  pollNow();
}

function runLabel(runId, others) {
  // "9:43:14 AM · lr 0.02 · batch 128": when it was made (from its id: it never changes while the
  // run trains), and the settings that differ from another active run's (else its models' names).
  const run = state.runs.find((r) => r.run_id === runId);
  const stamp = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})/.exec(runId);
  const made = stamp ? new Date(Date.UTC(+stamp[1], stamp[2] - 1, +stamp[3], +stamp[4], +stamp[5], +stamp[6])) : null;
  const owner = run && run.owner && ownerText(run.owner) !== "you" ? `${ownerText(run.owner)} · ` : ""; // the teacher's chips
  const parts = [owner + (made ? made.toLocaleTimeString() : runId)];
  if (!run || !run.models.length) return parts[0];
  const first = (r) => (r && r.models[0]) || {};
  const peerRuns = others.map((id) => state.runs.find((r) => r.run_id === id)).filter(Boolean);
  const peers = peerRuns.map(first);
  const mine = first(run);
  const differs = (key) => peers.some((m) => m[key] !== undefined && m[key] !== mine[key]);
  const settingDiffers = (key) => peerRuns.some((r) => r.settings[key] !== run.settings[key]);
  if (differs("learning_rate")) parts.push(`lr ${Number(mine.learning_rate.toPrecision(4))}`);
  if (differs("batch_size")) parts.push(`batch ${mine.batch_size}`);
  if (differs("optimizer")) parts.push(OPTIMIZER_NAMES[mine.optimizer] || mine.optimizer);
  if (settingDiffers("epochs")) parts.push(`${run.settings.epochs} epochs`);
  if (settingDiffers("train_samples")) parts.push(`${(run.settings.train_samples || 55000).toLocaleString("en-US")} images`);
  if (parts.length === 1) parts.push(run.models.map((m) => m.name).join(", "));
  return parts.join(" · ");
}

function follow(runId, byPage = false) {
  state.followedRunId = runId;
  state.followedByPage = byPage;
  if (!byPage && currentView() === "train") setUrl({ run: runId }, false); // the address names the run picked
  state.lastStatusText = "";
  pollNow();
}

export function followRuns(status) {
  // The live view, with runs that start and end by themselves (a queue, other workers, a command
  // line): the run shown is shown to its end (its title, its notification), also when the newest
  // run is then another one; a run that starts is announced, and shown (after the end of the one
  // shown) only when the user follows no run they picked. True: this answer is not of the run to
  // show (a poll comes at once).
  if (state.viewedRunId !== null) { state.activeSeen = null; return false; }
  const ids = status.active_runs || [];
  const seen = state.activeSeen;
  const shown = state.currentStatus;
  const { active } = state.settings.states;
  state.activeSeen = new Set(ids);
  if (seen === null) return false; // the first answer: nothing "started" since
  const started = ids.filter((id) => !seen.has(id));
  if (state.followedRunId === null && shown && shown.run_id !== status.run_id && active.includes(shown.state)
      && !ids.includes(shown.run_id)) { // the run shown has ended, and the answer is another's
    state.switchAfterEnd = !seen.has(status.run_id); // one that started since: shown after that end
    follow(shown.run_id, true);
    return true;
  }
  if (state.followedByPage && (started.length || state.switchAfterEnd)) {
    const endShown = shown && shown.run_id === state.followedRunId && !active.includes(shown.state);
    state.switchAfterEnd = !endShown;
    if (endShown) { follow(null); return true; } // to the newest: the run that started
    state.lastStatusText = ""; // this answer (the end) is shown now, the run that started after it
    return false;
  }
  const ended = [...seen].filter((id) => !ids.includes(id) && id !== status.run_id);
  if (ended.length) announce(`Run ${ended.join(", ")} ended (the run history says how).`);
  if (state.followedRunId !== null && !state.followedByPage) {
    for (const id of started) announce(`Run ${id} started; this panel stays on the run you picked ("Training now" lists both).`);
  }
  return false; // following none, the answer is of the newest run: the one that started, if one did
}

function renderActiveRuns(status, live) {
  // With several runs training at once, or one while the panel follows another: a button each,
  // the one the panel follows pressed.
  const box = $("active-runs");
  const ids = live ? status.active_runs || [] : [];
  const shown = ids.length > 1 || (ids.length === 1 && ids[0] !== status.run_id);
  box.hidden = !shown;
  $("stop-all").hidden = !shown;
  $("stop-all").disabled = false;
  $("stop-all").title = "";
  if (!shown) return;
  // a label says what sets its run apart, once the run table knows both runs' settings
  const labels = ids.map((id) => runLabel(id, ids.filter((o) => o !== id)));
  const key = JSON.stringify([ids, status.run_id, labels, status.workers]);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(el("span", { className: "muted", text: `Training now (${ids.length} of ${status.workers} workers): ` }),
    ...ids.map((id, i) => {
      const button = el("button", { type: "button", className: "run-chip", text: labels[i] });
      button.setAttribute("aria-pressed", String(id === status.run_id));
      button.title = `show run ${id} in the status panel`;
      button.addEventListener("click", () => follow(id));
      return button;
    }));
}

function backToLive() {
  state.viewedRunId = state.followedRunId = null;
  state.followedByPage = false;
  setUrl({ run: null });
  $("viewing").hidden = true;
  state.lastStatusText = "";
  showFormError("");
  pollNow();
}

function resumeShownRun() {
  const runId = state.currentStatus && state.currentStatus.run_id;
  if (!runId) return;
  resumeRun(runId, (message) => {
    state.resumeError = message ? { runId, message } : null;
    if (state.currentStatus) renderResume(state.currentStatus);
  });
}

// ------------------------------------------------------------------ status

function runLine(status, active) {
  if (!status.run_id) return "no run yet: set up the models above and press Start Training";
  const meta = [];
  if (status.run_id) meta.push(`run ${status.run_id}`);
  if (status.train_images) meta.push(`${status.train_images.toLocaleString("en-US")} training images`);
  if (status.device) meta.push(`device ${status.device}`);
  if (status.precision) meta.push(`precision ${status.precision}`);
  if (status.lr_schedule) meta.push(`LR schedule ${CHOICE_NAMES[status.lr_schedule] || status.lr_schedule}`);
  if (status.end_reason) meta.push(status.end_reason); // why it ended early: a sweep's pruner, in its words
  if (status.state === state.settings.states.queued) meta.push("waits in the queue: it starts by itself when the runs before it have ended");
  if (status.state === "starting" && status.waiting) meta.push(status.waiting); // Ray has had no room for it
  if (status.resumes) meta.push(`resumed ${status.resumes === 1 ? "once" : `${status.resumes} times`} from an epoch-end checkpoint`);
  if (active && timeLeft(status)) meta.push(timeLeft(status));
  return meta.join(" · ");
}

function timeLeft(status) {
  // The run's estimate, or (before its pace is steady, or while it starts) that it is being made.
  const known = status.eta_seconds !== null && status.eta_seconds !== undefined;
  if (status.state === "running" && known) return `time left ≈ ${fmtSeconds(status.eta_seconds)}`;
  return status.state === "stopping" ? "" : "time left: estimating";
}

function sweepTrial(runId) {
  // {sweep_id, trial} when the run is a trial of a sweep (from the run table), else null.
  const run = state.runs.find((r) => r.run_id === runId);
  return (run && run.sweep) || null;
}

function runProgress(status) {
  const models = status.models || [];
  return models.length ? models.reduce((sum, m) => sum + (m.progress || 0), 0) / models.length : 0;
}

function pageTitle(status, live, active) {
  if (live && active) return `${Math.floor(runProgress(status))} % · ${TITLE}`;
  return live && status.run_id ? `${status.state} · ${TITLE}` : TITLE;
}

export function renderStatus(status) {
  const previous = state.currentStatus;
  state.currentStatus = status;
  const active = state.settings.states.active.includes(status.state);
  const live = state.viewedRunId === null;
  $("state").textContent = status.state;
  $("state").className = `state ${status.state}`;
  $("run-meta").textContent = runLine(status, active);
  $("run-error").textContent = status.error || "";
  $("run-error").hidden = !status.error;
  const picked = !live || (state.followedRunId !== null && !state.followedByPage && state.workers === 1);
  $("viewing").hidden = !picked; // a run the user opened: the way back to the newest one
  const whose = status.owner && ownerText(status.owner) !== "you" ? `${ownerText(status.owner)}'s run` : "";
  $("viewing").firstChild.textContent = whose && !mayAct(status.owner) ? `${whose}, read-only`
    : whose ? `${whose}, ${live ? "the one you opened" : "from the history"}` : live ? "the run you opened" : "a run from the history";
  $("live-mark").hidden = !(live && active);
  renderSweepLink();
  $("run-link").hidden = !status.run_id;
  if (status.run_id) $("run-link").href = `/?view=train&run=${encodeURIComponent(status.run_id)}`;
  if (live && status.workers && status.workers !== state.workers) {
    state.workers = status.workers;
    renderSweep(); // its hint says how many runs train at once
  }
  renderActiveRuns(status, live);
  renderButtons(status);
  if (previous && (previous.run_id !== status.run_id || previous.state !== status.state)) showFormError("");
  document.title = pageTitle(status, live, active);
  announceState(status, previous);
  renderModels(status.models || [], status.state === "running");
  renderDownloads(status);
  renderResume(status);
}

export function renderUnreachable() {
  // The server does not answer: the status shown is only the last known one (said, with its age),
  // and what acts on a run is disabled until it answers again (the next answer redraws it all).
  const status = state.currentStatus;
  if (!status) return;
  const age = Math.max(0, Math.round((Date.now() - state.statusAt) / 1000));
  $("run-meta").textContent = `last known ${fmtSeconds(age)} ago, the server is not reachable · ${runLine(status, false)}`;
  document.querySelectorAll('#model-cards dd[data-field="Time left"]').forEach((dd) => { dd.textContent = "–"; });
  for (const id of ["stop", "stop-all", "resume"]) {
    $(id).disabled = true;
    $(id).title = "the server is not reachable";
  }
  document.title = `server unreachable · ${TITLE}`;
}

function liveRunState(status) {
  // The state of the run that trains now, or null: the shown status says it when it is the live
  // one; while a run from the history is shown, the run table does (it is fetched at every poll).
  const { active } = state.settings.states;
  if (state.viewedRunId === null) return active.includes(status.state) && mayAct(status.owner) ? status.state : null;
  const run = state.runs.find((r) => active.includes(r.state) && mayAct(r.owner)); // in a class, a student stops their own
  return run ? run.state : null;
}

function busyWorkers(status) {
  // How many runs train now: the live answer says it; while a past run is shown, the run table does.
  const { active } = state.settings.states;
  if (state.viewedRunId === null && status.active_runs) return status.active_runs.length;
  return state.runs.filter((r) => active.includes(r.state)).length;
}

function renderButtons(status) {
  const training = liveRunState(status);
  const full = (status.workers_busy ?? busyWorkers(status)) >= state.workers; // in a class, every student's runs
  const away = status.workers_unavailable; // Ray's workers are being restarted (or their cluster is lost)
  $("start").disabled = full || Boolean(away);
  const why = away ? `Ray's workers are unavailable (${away}): Queue puts this run in line, and it starts when they are back.`
    : full ? (state.workers > 1 ? `All ${state.workers} workers are busy: Queue puts this run in line.` : "A run is training: Queue puts this one in line after it.") : "";
  $("start").title = why;
  $("start-note").textContent = why; // a line kept empty when Start can start: nothing below it moves
  const several = busyWorkers(status) > 1;
  const viewingPast = state.viewedRunId !== null;
  // While a past run is shown, Stop stops the one run that trains; with several, the page cannot
  // say which: "Stop all", or back to live to pick one.
  $("stop").disabled = !training || training === "stopping" || (viewingPast && several);
  $("stop").title = viewingPast && several ? "several runs train: go back to live and pick one, or Stop all" : "";
  const trial = training && sweepTrial(status.run_id);
  $("stop").textContent = trial ? "Stop this trial" : several ? "Stop this run" : "Stop Training";
  if (trial && !$("stop").title) $("stop").title = "stops this run only: the sweep goes on with its next trial (\"Stop this sweep\" in the Sweeps view stops it all)";
  if (viewingPast) $("stop-all").hidden = !several;
  if (state.me && state.me.role === "student") $("stop-all").textContent = "Stop all my runs";
}

function resumeNote(status, busy) {
  if (!status.resumable) {
    return "It ended before its first epoch was complete, so there is no checkpoint to go on from: start it again (\"re-run\" in the run history fills the form with its settings).";
  }
  if (busy.length) {
    return state.workers > 1 ? `Every worker is busy (${busy.map((r) => r.run_id).join(", ")}): resume this one when a run has ended.`
      : `A run is training (${busy[0].run_id}): resume this one when it has ended.`;
  }
  return "It goes on in this same run from its last epoch-end checkpoint; the part of the epoch after that checkpoint is trained again.";
}

function workersBusy(exceptRunId = null) {
  // The runs training now (from the run table), when they take every worker; else [].
  const active = state.runs.filter((r) => state.settings.states.active.includes(r.state) && r.run_id !== exceptRunId);
  return active.length >= state.workers ? active : [];
}

function renderResume(status) {
  // A cut-off run shown here says whether it can go on, and how.
  const cutOff = state.settings.states.resumable.includes(status.state) && mayAct(status.owner); // a student's own
  const refused = state.resumeError && state.resumeError.runId === status.run_id;
  $("resume-line").hidden = !cutOff;
  if (!cutOff) {
    if (refused) state.resumeError = null; // it went on
    return;
  }
  if (refused) {
    $("resume-note").textContent = state.resumeError.message;
    return;
  }
  $("resume").hidden = !status.resumable;
  const busy = workersBusy(status.run_id);
  const away = status.workers_unavailable;
  $("resume").disabled = busy.length > 0 || Boolean(away);
  $("resume").title = "";
  $("resume-note").textContent = away && status.resumable ? `Ray's workers are unavailable (${away}): resume it when they are back.`
    : resumeNote(status, busy);
}

export function renderSweepLink() {
  // The sweep the shown run is a trial of, by name, one click away (known once the run table and
  // the sweeps have come: called again after each of their polls).
  const trial = state.currentStatus && sweepTrial(state.currentStatus.run_id);
  $("run-sweep").hidden = !trial;
  if (!trial) return;
  $("run-sweep").textContent = `trial ${trial.trial + 1} of sweep ${(state.sweepNames || {})[trial.sweep_id] || trial.sweep_id}`;
  $("run-sweep").href = `/?view=sweeps&sweep=${encodeURIComponent(trial.sweep_id)}`;
}

export function refreshRunButtons() {
  renderSweepLink();
  // What the buttons offer depends on the other runs too: drawn again when the run table changes.
  if (!state.currentStatus) return;
  renderActiveRuns(state.currentStatus, state.viewedRunId === null); // its labels come from the run table
  renderButtons(state.currentStatus);
  renderResume(state.currentStatus);
}

function announceState(status, previous) {
  // A run's state changed, or a new run started (or started and ended between two polls): in the
  // live view only, not for a run opened from the history.
  const live = state.viewedRunId === null;
  const newLive = live && state.lastLiveRunId !== null && state.lastLiveRunId !== status.run_id;
  state.lastLiveRunId = live ? status.run_id : null; // back from the history: nothing is "new"
  const key = `${status.run_id}:${status.state}`;
  if (!status.run_id || key === state.lastAnnounced) return;
  state.lastAnnounced = key;
  const sameRun = previous && previous.run_id === status.run_id;
  const ended = state.settings.states.final.includes(status.state);
  const started = newLive && !ended;
  if (!sameRun && !newLive) return;
  const best = (status.models || []).map((m) => `${m.name} ${fmt(m.test_accuracy, 2, " %")}`).join(", ");
  announce(ended ? `Run ${status.state}. Test accuracy: ${best}.` : started ? `Run ${status.run_id} started (${status.state}).` : `The run is now ${status.state}.`);
  if (ended && live) notifyRunEnd(status, best);
}

function modelCard(card, m, i, active) {
  card.style.borderLeftColor = modelColor(m, i);
  const rows = [
    // a pruned run stopped after an epoch: its card says the epochs it trained, not the one it would start
    ["Epoch", state.currentStatus && state.currentStatus.state === "pruned" ? `${Math.round(((m.progress || 0) / 100) * m.epochs)} / ${m.epochs}, pruned` : `${m.epoch} / ${m.epochs}`],
    ["Loss", fmt(m.loss, 4)],
    ["Train accuracy (dropout on)", fmt(m.accuracy, 2, " %")],
    ["Validation accuracy", fmt(m.val_accuracy, 2, " %")],
    ["Test accuracy", fmt(m.test_accuracy, 2, " %")],
    ["Time left", m.eta_seconds === null || m.eta_seconds === undefined ? (active ? "estimating" : "–") : fmtSeconds(m.eta_seconds)],
  ];
  const dl = el("dl");
  for (const [k, v] of rows) dl.append(el("dt", { text: k }), el("dd", { text: v, "data-field": k }));
  const speed = m.samples_per_sec ? Math.round(m.samples_per_sec).toLocaleString("en-US") : "–";
  const wasOpen = Boolean(card.querySelector("details[open]")); // a poll keeps it as the user left it
  const details = el("details", { className: "card-details" }, el("summary", { text: "Details" }),
    el("p", { text: "Training accuracy is measured on the training batches as they are trained, with dropout on (a share of the units switched off), so it often reads below the validation accuracy, measured with every unit on." }),
    el("dl", {}, ...[["Batch", m.batches ? `${m.batch} / ${m.batches}` : "–"], ["Progress", fmt(m.progress, 1, " %")],
      ["Parameters", m.parameters ? m.parameters.toLocaleString("en-US") : "–"], ["Images / s", speed]]
      .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v, "data-field": k })])));
  details.open = wasOpen;
  const bar = el("div", { role: "progressbar", "aria-label": `${m.name} progress`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(m.progress || 0)) });
  bar.style.width = `${m.progress || 0}%`;
  bar.style.background = modelColor(m, i);
  const title = `${m.name} [${(m.kernels || []).join(", ")}]`;
  const sub = `${OPTIMIZER_NAMES[m.optimizer] || m.optimizer || ""} · lr ${m.learning_rate === null || m.learning_rate === undefined ? "" : Number(m.learning_rate.toPrecision(4))} · batch ${m.batch_size ?? ""}`;
  card.replaceChildren(el("h3", { text: title }), el("div", { className: "muted", text: sub }),
    el("div", { className: "progress" }, bar), dl, details);
}

function renderModels(models, active) {
  const cards = $("model-cards");
  const placeholder = cards.querySelector(".cards-placeholder");
  if (!models.length) { // the space the cards take is kept (nothing below moves when they come): say what it is for
    if (!placeholder) cards.replaceChildren(el("p", { className: "cards-placeholder muted", text: "A card per model (its epoch, loss, accuracies, images per second and time left) appears here when a run starts." }));
    return;
  }
  if (placeholder) placeholder.remove();
  while (cards.children.length > models.length) cards.lastChild.remove();
  models.forEach((m, i) => {
    let card = cards.children[i];
    if (!card) {
      card = el("div", { className: "card" });
      cards.append(card);
    }
    modelCard(card, m, i, active);
  });
}

function renderDownloads(status) {
  const box = $("downloads");
  box.replaceChildren();
  if (!status.run_id) return;
  box.append("Downloads: ", el("a", { href: status.metrics_csv, download: "", text: "metrics (CSV)" }));
  (status.models || []).forEach((m) => {
    if (m.checkpoint) box.append(" · ", el("a", { href: m.checkpoint, download: "", text: `${m.name} best checkpoint (.pt)` }));
  });
  if (state.settings.states.final.includes(status.state)) { // the whole run, to keep, hand on or import elsewhere
    box.append(" · ", el("a", { href: `/runs/${encodeURIComponent(status.run_id)}/export.zip`, download: "", text: "the whole run (.zip, to import elsewhere)" }));
  }
}

export function setupStatus() {
  $("train-form").addEventListener("submit", startTraining);
  $("queue").addEventListener("click", () => submitRuns(true));
  $("resume").addEventListener("click", resumeShownRun);
  $("stop").addEventListener("click", () => stopTraining(false));
  $("stop-all").addEventListener("click", () => stopTraining(true));
  $("run-sweep").addEventListener("click", (event) => {
    event.preventDefault();
    goToView("sweeps", { sweep: new URL($("run-sweep").href).searchParams.get("sweep") });
  });
  $("back-live").addEventListener("click", backToLive);
}
