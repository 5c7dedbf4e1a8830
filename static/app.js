"use strict";
// MNIST Training Monitor page: start and stop runs, poll GET /training_status every 3 s (one
// request chain, never overlapping), show the run, its pictures, and predictions of digits.

const POLL_MS = 3000;
const TITLE = "MNIST Training Monitor";
const IMAGE_KINDS = { samples: "sample predictions", errors: "misclassified digits", confusion: "confusion matrix",
  filters: "filters of conv 1" };
const misclassified = {}; // model index -> the test digits its "misclassified" picture shows, in order

let viewedRunId = null; // a past run opened from the history; null: follow the live run
let lastStatusText = "";
let lastRunsText = "";
let currentStatus = null;
let lastAnnounced = ""; // "run id:state" last said to screen readers
let serverDown = false;
const shownImages = {}; // element id -> URL shown (URLs carry a version, so equal URL = same image)

function announce(message) {
  // Said politely by screen readers; only state changes and results, never every poll.
  $("announcer").textContent = message;
}

// ------------------------------------------------------------------ start and stop

let formErrorIsConnection = false; // the form's message says the server was down: it goes when it is back

async function send(url, body) {
  // POST that never throws: a network failure is an answer too, shown to the user.
  try {
    return await postJSON(url, body);
  } catch (err) {
    return { ok: false, status: 0, offline: true, data: { error: "the server is not reachable; try again when it is back" } };
  }
}

async function submitRuns(queueAll) {
  // Start (or with queueAll: queue) the form's run, or each run of a sweep: the first starts now
  // if nothing trains, the others wait in the queue.
  showFormError("");
  if (!validateForm()) return;
  const configs = readForms();
  $("start").disabled = true;
  $("queue").disabled = true;
  const done = [];
  for (const [i, config] of configs.entries()) {
    const body = queueAll || i > 0 ? { ...config, queue: true } : config;
    const result = await send("/start_training", body);
    if (!result.ok) {
      const error = result.data.error || `could not start (HTTP ${result.status})`;
      if (configs.length > 1) showFormError(`run ${i + 1} of ${configs.length} of the sweep: ${error}${done.length ? ` (the ${done.length} before it are in)` : ""}`);
      else showServerError(error, result.data.field);
      formErrorIsConnection = Boolean(result.offline);
      break;
    }
    done.push(result.data);
  }
  $("queue").disabled = false;
  if (currentStatus) renderButtons(currentStatus); else $("start").disabled = false;
  if (!done.length) return;
  rememberForm(formAsTyped());
  const queued = done.filter((r) => r.state === SETTINGS.states.queued).length;
  if (queued) announce(`${queued} run${queued === 1 ? "" : "s"} queued${done.length > queued ? ", 1 started" : ""}.`);
  viewedRunId = null;
  pollNow();
}

async function startTraining(event) {
  event.preventDefault();
  await submitRuns(false);
}

async function stopTraining() {
  $("stop").disabled = true;
  const result = await send("/stop_training", {});
  if (!result.ok) showFormError(result.data.error || `could not stop (HTTP ${result.status})`);
  pollNow();
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
  if (status.state === SETTINGS.states.queued) meta.push("waits in the queue: it starts by itself when the runs before it have ended");
  if (status.resumes) meta.push(`resumed ${status.resumes === 1 ? "once" : `${status.resumes} times`} from an epoch-end checkpoint`);
  if (active && status.eta_seconds !== null && status.eta_seconds !== undefined) meta.push(`time left ≈ ${fmtSeconds(status.eta_seconds)}`);
  return meta.join(" · ");
}

function runProgress(status) {
  const models = status.models || [];
  return models.length ? models.reduce((sum, m) => sum + (m.progress || 0), 0) / models.length : 0;
}

function renderStatus(status) {
  const previous = currentStatus;
  currentStatus = status;
  const active = SETTINGS.states.active.includes(status.state);
  const live = viewedRunId === null;
  $("state").textContent = status.state;
  $("state").className = `state ${status.state}`;
  $("run-meta").textContent = runLine(status, active);
  $("run-error").textContent = status.error || "";
  $("run-error").hidden = !status.error;
  $("viewing").hidden = live;
  renderButtons(status);
  if (previous && (previous.run_id !== status.run_id || previous.state !== status.state)) showFormError("");
  document.title = live && active ? `${Math.floor(runProgress(status))} % · ${TITLE}` : live && status.run_id ? `${status.state} · ${TITLE}` : TITLE;
  announceState(status, previous);
  renderModels(status.models || []);
  renderDownloads(status);
  renderResume(status);
  renderImages(status);
}

let resumeError = null; // {runId, message}: why the last "Resume this run" was refused, said beside it

function liveRunState(status) {
  // The state of the run that trains now, or null: the shown status says it when it is the live
  // one; while a run from the history is shown, the run table does (it is fetched at every poll).
  if (viewedRunId === null) return SETTINGS.states.active.includes(status.state) ? status.state : null;
  const run = history_.runs.find((r) => SETTINGS.states.active.includes(r.state));
  return run ? run.state : null;
}

function renderButtons(status) {
  const state = liveRunState(status);
  $("start").disabled = Boolean(state);
  $("start").title = state ? "a run is training: Queue puts this one in line after it" : "";
  $("stop").disabled = !state || state === "stopping";
}

function renderResume(status) {
  // A cut-off run shown here says whether it can go on, and how.
  const cutOff = SETTINGS.states.resumable.includes(status.state);
  $("resume-line").hidden = !cutOff;
  if (!cutOff) {
    if (resumeError && resumeError.runId === status.run_id) resumeError = null; // it went on
    return;
  }
  if (resumeError && resumeError.runId === status.run_id) {
    $("resume-note").textContent = resumeError.message;
    return;
  }
  $("resume").hidden = !status.resumable;
  const busy = history_.runs.find((r) => SETTINGS.states.active.includes(r.state) && r.run_id !== status.run_id);
  $("resume").disabled = Boolean(busy);
  $("resume-note").textContent = !status.resumable
    ? "It ended before its first epoch was complete, so there is no checkpoint to go on from: start it again (\"re-run\" in the run history fills the form with its settings)."
    : busy ? `A run is training (${busy.run_id}): resume this one when it has ended.`
      : "It goes on in this same run from its last epoch-end checkpoint; the part of the epoch after that checkpoint is trained again.";
}

function announceState(status, previous) {
  // A run's state changed, or a new run started: not a run opened from the history.
  const key = `${status.run_id}:${status.state}`;
  if (!status.run_id || key === lastAnnounced) return;
  lastAnnounced = key;
  const sameRun = previous && previous.run_id === status.run_id;
  const started = previous && !sameRun && viewedRunId === null && SETTINGS.states.active.includes(status.state);
  if (!sameRun && !started) return;
  const best = (status.models || []).map((m) => `${m.name} ${fmt(m.test_accuracy, 2, " %")}`).join(", ");
  const ended = SETTINGS.states.final.includes(status.state);
  announce(ended ? `Run ${status.state}. Test accuracy: ${best}.` : `Run ${status.state}.`);
  if (ended && previous && previous.run_id === status.run_id && viewedRunId === null) notifyRunEnd(status, best);
}

function notifyRunEnd(status, best) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try { new Notification(`Training ${status.state}`, { body: best || `run ${status.run_id}` }); } catch (_) { /* not allowed here */ }
}

function setupNotifications() {
  const button = $("notify");
  if (!("Notification" in window) || Notification.permission !== "default") { button.hidden = true; return; }
  button.hidden = false;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = true;
  });
}

function renderModels(models) {
  const cards = $("model-cards");
  while (cards.children.length > models.length) cards.lastChild.remove();
  models.forEach((m, i) => {
    let card = cards.children[i];
    if (!card) {
      card = el("div", { className: "card" });
      cards.append(card);
    }
    card.style.borderLeftColor = MODEL_COLORS[i];
    const rows = [
      ["Epoch", `${m.epoch} / ${m.epochs}`],
      ["Batch", m.batches ? `${m.batch} / ${m.batches}` : "–"],
      ["Loss", fmt(m.loss, 4)],
      ["Train accuracy", fmt(m.accuracy, 2, " %")],
      ["Validation accuracy", fmt(m.val_accuracy, 2, " %")],
      ["Test accuracy", fmt(m.test_accuracy, 2, " %")],
      ["Images / s", m.samples_per_sec ? Math.round(m.samples_per_sec).toLocaleString("en-US") : "–"],
      ["Time left", m.eta_seconds === null || m.eta_seconds === undefined ? "–" : fmtSeconds(m.eta_seconds)],
      ["Progress", fmt(m.progress, 1, " %")],
    ];
    const dl = el("dl");
    for (const [k, v] of rows) dl.append(el("dt", { text: k }), el("dd", { text: v, "data-field": k }));
    const bar = el("div", { role: "progressbar", "aria-label": `${m.name} progress`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(m.progress || 0)) });
    bar.style.width = `${m.progress || 0}%`;
    bar.style.background = MODEL_COLORS[i];
    const title = `${m.name} [${(m.kernels || []).join(", ")}]`;
    const sub = `${OPTIMIZER_NAMES[m.optimizer] || m.optimizer || ""} · lr ${m.learning_rate ?? ""} · batch ${m.batch_size ?? ""} · ${m.parameters ? m.parameters.toLocaleString("en-US") + " parameters" : ""}`;
    card.replaceChildren(el("h3", { text: title }), el("div", { className: "muted", text: sub }),
      el("div", { className: "progress" }, bar), dl);
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
}

// ------------------------------------------------------------------ pictures

function modelColumn(index) {
  const id = `model-column-${index}`;
  let column = document.getElementById(id);
  if (!column) {
    column = el("div", { id, className: "model-column" });
    const after = [...$("per-model").children].find((c) => Number(c.id.split("-").pop()) > index);
    $("per-model").insertBefore(column, after || null);
  }
  return column;
}

function setImage(container, kind, index, model, url) {
  // A figure whose space is reserved (from the picture's known size) before the picture arrives.
  const id = `img-${kind}-${index}`;
  let fig = document.getElementById(id);
  if (!fig) {
    const [width, height] = SETTINGS.image_sizes[kind];
    const frame = el("div", { className: "frame" });
    frame.style.aspectRatio = `${width} / ${height}`;
    frame.style.maxWidth = `${width}px`; // never drawn larger than rendered
    fig = el("figure", { id }, el("figcaption"), frame);
    container.append(fig);
  }
  const caption = `${model.name}: ${IMAGE_KINDS[kind]}`;
  fig.querySelector("figcaption").textContent = caption;
  fig.style.borderTopColor = MODEL_COLORS[index];
  const frame = fig.querySelector(".frame");
  if (!url) {
    frame.replaceChildren(el("p", { className: "muted placeholder", text: "appears at the end of the first epoch" }));
    delete shownImages[id];
  } else if (shownImages[id] !== url) { // only fetch a picture when its version changed
    const img = el("img", { src: url, alt: `${caption}, epoch ${model.epoch}` });
    if (kind === "samples" || kind === "errors") {
      img.className = "pickable";
      img.title = "click a digit to see what each layer makes of it";
      img.addEventListener("click", (event) => pickDigit(event, img, kind, index));
    }
    frame.replaceChildren(img);
    shownImages[id] = url;
  }
}

function renderImages(status) {
  const images = status.images || {};
  $("curves-figure").hidden = !images.curves;
  if (images.curves) $("curves-figure").href = images.curves;
  const models = status.models || [];
  for (let i = 0; i < LIMITS.models[1]; i++) {
    if (!models[i]) { const old = document.getElementById(`model-column-${i}`); if (old) old.remove(); continue; }
    const column = modelColumn(i);
    for (const kind of Object.keys(IMAGE_KINDS)) setImage(column, kind, i, models[i], (models[i].images || {})[kind]);
    renderConfusionTable(column, i, models[i]);
  }
}

async function renderConfusionTable(column, index, model) {
  // The confusion matrix's numbers as a table, for screen readers and for reading exact counts.
  const id = `confusion-table-${index}`;
  let details = document.getElementById(id);
  if (!details) {
    details = el("details", { id, className: "confusion-table" }, el("summary", { text: `${model.name}: confusion matrix as a table` }), el("div"));
    column.append(details);
  }
  if (!model.confusion || details.dataset.url === model.confusion) return;
  details.dataset.url = model.confusion;
  try {
    const data = await getJSON(model.confusion);
    misclassified[index] = data.errors || [];
    const head = el("tr", {}, el("th", { scope: "col", text: "true \\ predicted" }), ...data.matrix.map((_, p) => el("th", { scope: "col", text: String(p) })));
    const rows = data.matrix.map((row, t) => el("tr", {}, el("th", { scope: "row", text: String(t) }), ...row.map((n) => el("td", { text: String(n) }))));
    details.querySelector("summary").textContent = `${data.model}: confusion matrix as a table (epoch ${data.epoch})`;
    details.querySelector("div").replaceChildren(el("div", { className: "table-scroll" }, el("table", {}, el("caption", { text: "rows: true digit; columns: predicted digit" }), el("thead", {}, head), el("tbody", {}, ...rows))));
  } catch (_) {
    details.dataset.url = ""; // try again at the next poll
  }
}

// ------------------------------------------------------------------ polling

let pollTimer = null;
let pollInFlight = false; // one request chain at a time: polls never overlap
let pollSoon = false;     // a poll was asked for while one was in flight

async function fetchStatus() {
  const url = viewedRunId ? `/runs/${encodeURIComponent(viewedRunId)}` : "/training_status";
  const response = await fetch(url, { cache: "no-cache" });
  if (response.status === 404 && viewedRunId) { // the run was deleted while it was shown
    const gone = viewedRunId;
    viewedRunId = null;
    lastStatusText = "";
    await fetchStatus();
    showFormError(`run ${gone} no longer exists (deleted); showing the live run`);
    return;
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const text = await response.text();
  if (text !== lastStatusText) { // unchanged: nothing to redraw
    lastStatusText = text;
    renderStatus(JSON.parse(text));
  }
}

async function fetchRuns() {
  const response = await fetch("/runs", { cache: "no-cache" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const text = await response.text();
  if (text === lastRunsText) return;
  lastRunsText = text;
  const body = JSON.parse(text);
  const size = body.runs_bytes >= 1e9 ? `${(body.runs_bytes / 1e9).toFixed(2)} GB` : `${(body.runs_bytes / 1e6).toFixed(1)} MB`;
  $("runs-size").textContent = `${body.runs.length} run${body.runs.length === 1 ? "" : "s"}, ${size} on disk. `
    + (body.keep_runs > 0 ? `Only the newest ${body.keep_runs} are kept (server option --keep-runs): older ones are removed after each run, starred ones never.`
      : "Every run is kept until you delete it.");
  renderHistory(body.runs);
  if (currentStatus) { // what the buttons offer depends on the other runs too
    renderButtons(currentStatus);
    renderResume(currentStatus);
  }
}

function refreshCurveRuns() {
  // The runs the curves show: the compared ones, else the run shown in the status panel.
  if (history_.compareIds.length) {
    setCurveRuns(comparedRuns().map((r, i) => ({ runId: r.run_id, label: runLabel(r, i), names: r.models.map((m) => m.name), epochs: r.settings.epochs })));
  } else if (currentStatus && currentStatus.run_id) {
    const epochs = currentStatus.models.length ? currentStatus.models[0].epochs : 0;
    setCurveRuns([{ runId: currentStatus.run_id, label: currentStatus.run_id, names: currentStatus.models.map((m) => m.name), epochs }]);
  } else {
    setCurveRuns([]);
  }
}

function setConnection(message) {
  $("connection").textContent = message;
  $("connection").hidden = !message;
}

async function poll() {
  pollInFlight = true;
  try {
    await fetchStatus();
    await fetchRuns();
    refreshCurveRuns();
    await updateCurves(); // after the status: the curves are never older than the numbers beside them
    if (serverDown) {
      serverDown = false;
      setConnection("");
      if (formErrorIsConnection) { showFormError(""); formErrorIsConnection = false; }
      announce("Connection to the server is back.");
    }
  } catch (err) {
    if (!(err instanceof TypeError && /fetch/i.test(err.message)) && !err.status && !/^HTTP/.test(err.message)) {
      console.error(err); // the page's own fault, not the network's: say so, and keep polling
      setConnection(`The page hit an error (${err.message}); retrying every ${POLL_MS / 1000} s.`);
    } else {
      if (!serverDown) announce("The server is not reachable; retrying.");
      setConnection(`The server is not reachable (${err.message}); retrying every ${POLL_MS / 1000} s.`);
    }
    serverDown = true;
    lastStatusText = lastRunsText = ""; // redraw everything once it answers again
  } finally {
    pollInFlight = false;
  }
  const delay = pollSoon ? 0 : POLL_MS; // next poll only after this reply
  pollSoon = false;
  pollTimer = setTimeout(poll, delay);
}

function pollNow() {
  lastRunsText = "";
  if (pollInFlight) { pollSoon = true; return; }
  clearTimeout(pollTimer);
  poll();
}

function openRun(runId) {
  // The run that is training is followed live; any other run is shown as it ended.
  const run = history_.runs.find((r) => r.run_id === runId);
  viewedRunId = run && SETTINGS.states.active.includes(run.state) ? null : runId;
  lastStatusText = "";
  showFormError("");
  pollNow();
  $("status-panel").scrollIntoView({ behavior: "smooth", block: "start" });
}

// ------------------------------------------------------------------ predictions

let clearCanvas = () => {};

function setupCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "black"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clearCanvas = clear;
  clear();
  let drawing = false;
  let last = null;
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return { x: (event.clientX - rect.left) * (canvas.width / rect.width), y: (event.clientY - rect.top) * (canvas.height / rect.height) };
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true; last = point(event); canvas.setPointerCapture(event.pointerId);
    ctx.fillStyle = "white"; ctx.beginPath(); ctx.arc(last.x, last.y, 9, 0, 2 * Math.PI); ctx.fill();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const p = point(event);
    ctx.strokeStyle = "white"; ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(last.x, last.y); ctx.lineTo(p.x, p.y); ctx.stroke();
    last = p;
  });
  const end = () => { if (drawing) { drawing = false; predict({ image: canvas.toDataURL("image/png") }); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("clear-canvas").addEventListener("click", () => { clear(); $("prediction-bars").replaceChildren(); $("test-digit-image").hidden = true; });
  const predictTestDigit = () => {
    const index = Number($("test-index").value);
    if (!Number.isInteger(index) || index < 0 || index > 9999 || $("test-index").value === "") {
      showPredictionError("Pick a test digit number from 0 to 9,999.");
      return;
    }
    clearCanvas(); // the answers are about the test digit now, not a drawing
    predict({ test_index: index });
  };
  $("predict-test-digit").addEventListener("click", predictTestDigit);
  $("test-index").addEventListener("keydown", (event) => { if (event.key === "Enter") predictTestDigit(); });
}

function pickDigit(event, img, kind, index) {
  // A click on a digit of a grid picture: which test digit it is, then what the models make of it.
  const grid = SETTINGS.digit_grid;
  const x = (event.offsetX * img.naturalWidth) / img.clientWidth;
  const y = (event.offsetY * img.naturalHeight) / img.clientHeight - grid.top;
  const column = Math.floor(x / grid.cell[0]);
  const position = Math.floor(y / grid.cell[1]) * grid.columns + column;
  if (y < 0 || column >= grid.columns) return;
  const testIndex = kind === "samples" ? position : (misclassified[index] || [])[position];
  if (testIndex === undefined || (kind === "samples" && position >= grid.samples)) return;
  $("test-index").value = String(testIndex);
  clearCanvas();
  predict({ test_index: testIndex });
  $("draw").scrollIntoView({ behavior: "smooth", block: "start" });
}

function renderLayerViews(data) {
  const box = $("layer-views");
  const input = data.test_index !== undefined ? `test digit ${data.test_index} (a ${data.label})` : "your drawing";
  box.replaceChildren(el("figure", { className: "layer-input" }, el("figcaption", { text: `The input: ${input}, 28×28 as the models get it` }),
    el("img", { src: data.input_image, alt: `the input, ${input}, 28 by 28 pixels`, width: "112", height: "112" })));
  for (const p of data.predictions) {
    const from = p.epoch ? ` (weights of epoch ${p.epoch})` : "";
    const column = el("div", {}, el("h3", { className: "model-heading", text: `${p.model} reads ${p.digit}${from}` }));
    column.querySelector("h3").style.borderLeftColor = MODEL_COLORS[p.index];
    for (const layer of p.layers || []) {
      const shape = layer.shape.join("×");
      const cut = layer.shown < layer.shape[0] ? ` (the first ${layer.shown} of ${layer.shape[0]} maps shown)` : "";
      column.append(el("figure", { className: "layer-view" },
        el("figcaption", { text: `${layer.name}: ${shape}${cut}` }),
        el("img", { src: layer.image, alt: `${p.model}, ${layer.name}: ${shape} activations` })));
    }
    box.append(column);
  }
}

function showPredictionError(message) {
  $("prediction-bars").replaceChildren(el("p", { className: "error", role: "alert", text: message }));
}

async function predict(body) {
  const runId = viewedRunId || (currentStatus && currentStatus.run_id);
  if (runId) body.run_id = runId;
  body.layers = true; // and what each layer computes, for "Inside the network"
  const result = await send("/predict", body);
  if (!result.ok) {
    const { error, field } = result.data;
    const message = error && field && error.startsWith(`${field}: `) ? error.slice(field.length + 2) : error; // no API field names
    showPredictionError(message ? message.charAt(0).toUpperCase() + message.slice(1) : `HTTP ${result.status}`);
    return;
  }
  const data = result.data;
  const picture = $("test-digit-image");
  picture.hidden = !data.digit_image;
  if (data.digit_image) { picture.src = data.digit_image; picture.alt = `test digit ${data.test_index}, a ${data.label}`; }
  const box = $("prediction-bars");
  box.replaceChildren();
  if (data.test_index !== undefined) box.append(el("p", { text: `Test digit ${data.test_index}: its true label is ${data.label}.` }));
  for (const p of data.predictions) {
    const color = MODEL_COLORS[p.index];
    const grid = el("div", { className: "bars", "data-model": p.model, role: "list", "aria-label": `${p.model}: probability of each digit` });
    p.probabilities.forEach((prob, digit) => {
      const bar = el("div", { className: "bar" });
      bar.style.width = `${Math.max(1, prob * 100)}%`;
      bar.style.background = color;
      const cls = digit === p.digit ? "best" : "";
      const item = el("div", { className: "bar-row", role: "listitem", "aria-label": `${digit}: ${(prob * 100).toFixed(1)} %` },
        el("span", { className: cls, text: String(digit) }), el("div", {}, bar), el("span", { className: cls, text: `${(prob * 100).toFixed(1)}%` }));
      grid.append(item);
    });
    const heading = el("h3", { className: "prediction model-heading", text: `${p.model}: ${p.digit}` });
    if (p.epoch) heading.append(el("span", { className: "muted", text: ` (epoch ${p.epoch} weights)` }));
    heading.style.borderLeftColor = color;
    box.append(el("div", {}, heading, grid));
  }
  renderLayerViews(data);
  announce(data.predictions.map((p) => `${p.model} reads ${p.digit}`).join(", "));
}

// ------------------------------------------------------------------ start

async function loadSettings() {
  // Retries until the server answers: the form cannot be built without its limits.
  for (;;) {
    try {
      return await getJSON("/config");
    } catch (err) {
      setConnection(`The server is not reachable (${err.message}); retrying every ${POLL_MS / 1000} s.`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function init() {
  // What needs no settings is built at once, before the first paint, so nothing jumps in later.
  setupCanvas();
  setupCharts();
  setupHistory();
  setupNotifications();
  $("add-model").addEventListener("click", () => addModelRow({}));
  $("train-form").addEventListener("submit", startTraining);
  $("queue").addEventListener("click", () => submitRuns(true));
  $("resume").addEventListener("click", () => {
    const runId = currentStatus && currentStatus.run_id;
    if (runId) resumeRun(runId, (message) => { resumeError = message ? { runId, message } : null; if (currentStatus) renderResume(currentStatus); });
  });
  $("stop").addEventListener("click", stopTraining);
  $("back-live").addEventListener("click", () => { viewedRunId = null; lastStatusText = ""; showFormError(""); pollNow(); });
  applySettings(await loadSettings());
  setConnection("");
  poll();
}

document.addEventListener("DOMContentLoaded", init);
