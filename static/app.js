"use strict";
// MNIST Training Monitor page: form -> POST /start_training; poll GET /training_status every 3 s.

const POLL_MS = 3000;
const INFO_DEBOUNCE_MS = 200; // wait for typing to pause before asking /model_info
// Defaults, limits, choices and run states come from the server (GET /config) at start-up.
let SETTINGS = null;
const DEFAULTS = {};
const LIMITS = {};

let viewedRunId = null; // a past run opened from the history; null: follow the live run
let lastStatusText = "";
let lastRunsText = "";
let currentStatus = null;
const shownImages = {}; // element id -> URL shown (URLs carry a version, so equal URL = same image)

// ------------------------------------------------------------------ form

function addModelRow(model = {}) {
  const rows = $("model-rows");
  if (rows.children.length >= LIMITS.models[1]) return;
  const index = rows.children.length;
  const kernels = model.kernels || DEFAULTS.models[DEFAULTS.models.length - 1].kernels;
  const tr = el("tr", { className: "model-row" });
  const swatch = el("span", { className: "swatch" });
  const name = el("input", { className: "name", type: "text", maxlength: "40", value: model.name || `Model ${index + 1}`, "aria-label": "model name" });
  const kernelCell = el("td");
  kernels.forEach((k, i) => kernelCell.append(el("input", {
    className: "kernel", type: "number", min: String(LIMITS.kernels[0]), max: String(LIMITS.kernels[1]), step: "1", value: String(k), "aria-label": `conv ${i + 1} channels`,
  })));
  const optimizer = el("select", { className: "optimizer", "aria-label": "optimizer" },
    el("option", { value: "adam", text: "Adam" }), el("option", { value: "sgd", text: "SGD (momentum 0.9)" }));
  optimizer.value = model.optimizer || DEFAULTS.optimizer;
  const lr = el("input", { className: "lr", type: "number", min: String(LIMITS.learning_rate[0]), max: String(LIMITS.learning_rate[1]), step: "any", value: String(model.learning_rate || DEFAULTS.learning_rate), "aria-label": "learning rate" });
  const batch = el("input", { className: "batch", type: "number", min: String(LIMITS.batch_size[0]), max: String(LIMITS.batch_size[1]), step: "1", value: String(model.batch_size || DEFAULTS.batch_size), "aria-label": "batch size" });
  const params = el("td", { className: "params", text: "…" });
  const remove = el("button", { type: "button", className: "remove", title: "remove this model", text: "✕" });
  remove.addEventListener("click", () => { tr.remove(); refreshRows(); });
  tr.append(el("td", {}, swatch), el("td", {}, name), kernelCell, el("td", {}, optimizer), el("td", {}, lr),
    el("td", {}, batch), params, el("td", {}, remove));
  rows.append(tr);
  for (const input of kernelCell.querySelectorAll("input")) input.addEventListener("input", () => scheduleModelInfo(tr));
  refreshRows();
  scheduleModelInfo(tr);
}

function refreshRows() {
  const rows = [...$("model-rows").children];
  rows.forEach((tr, i) => { tr.querySelector(".swatch").style.background = MODEL_COLORS[i]; });
  rows.forEach((tr) => { tr.querySelector(".remove").disabled = rows.length <= 1; });
  $("add-model").disabled = rows.length >= LIMITS.models[1];
  renderModelInfo();
}

function readKernels(tr) {
  return [...tr.querySelectorAll(".kernel")].map((input) => Number(input.value));
}

function isInt(value, [low, high]) {
  return Number.isInteger(value) && value >= low && value <= high;
}

const infoTimers = new WeakMap();
const infoCache = new Map(); // "32,64,64,64" -> /model_info answer

function scheduleModelInfo(tr) {
  clearTimeout(infoTimers.get(tr));
  infoTimers.set(tr, setTimeout(() => updateModelInfo(tr), INFO_DEBOUNCE_MS));
}

async function fetchModelInfo(kernels) {
  const key = kernels.join(",");
  if (!infoCache.has(key)) {
    const response = await fetch(`/model_info?kernels=${encodeURIComponent(key)}`);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    infoCache.set(key, body);
  }
  return infoCache.get(key);
}

async function updateModelInfo(tr) {
  const kernels = readKernels(tr);
  const cell = tr.querySelector(".params");
  tr.querySelectorAll(".kernel").forEach((input) => input.classList.toggle("invalid", !isInt(Number(input.value), LIMITS.kernels) || input.value === ""));
  if (!kernels.every((k) => isInt(k, LIMITS.kernels))) {
    cell.textContent = `kernels: ${LIMITS.kernels[0]} to ${LIMITS.kernels[1]}`;
    cell.classList.add("error");
    return;
  }
  try {
    const info = await fetchModelInfo(kernels);
    if (readKernels(tr).join(",") !== kernels.join(",")) return; // changed meanwhile
    cell.textContent = info.total_parameters.toLocaleString("en-US");
    cell.classList.remove("error");
    renderModelInfo();
  } catch (err) {
    cell.textContent = String(err.message || err);
    cell.classList.add("error");
  }
}

function readForm() {
  // Returns {config} or {error}: checks what the server checks, with the same limits.
  const models = [];
  const rows = [...$("model-rows").children];
  for (const [i, tr] of rows.entries()) {
    const label = `Model ${i + 1}`;
    const name = tr.querySelector(".name").value.trim();
    const kernels = readKernels(tr);
    const lr = Number(tr.querySelector(".lr").value);
    const batch = Number(tr.querySelector(".batch").value);
    if (!name) return { error: `${label}: give it a name` };
    if (!kernels.every((k) => isInt(k, LIMITS.kernels))) return { error: `${label}: kernels must be whole numbers from ${LIMITS.kernels[0]} to ${LIMITS.kernels[1]}` };
    if (!(Number.isFinite(lr) && lr > LIMITS.learning_rate[0] && lr <= LIMITS.learning_rate[1]) || tr.querySelector(".lr").value === "") return { error: `${label}: learning rate must be greater than ${LIMITS.learning_rate[0]} and at most ${LIMITS.learning_rate[1]}` };
    if (!isInt(batch, LIMITS.batch_size)) return { error: `${label}: batch size must be a whole number from ${LIMITS.batch_size[0]} to ${LIMITS.batch_size[1]}` };
    models.push({ name, kernels, optimizer: tr.querySelector(".optimizer").value, learning_rate: lr, batch_size: batch });
  }
  const names = models.map((m) => m.name);
  if (new Set(names).size !== names.length) return { error: "model names must be different" };
  const epochs = Number($("epochs").value);
  if (!isInt(epochs, LIMITS.epochs)) return { error: `epochs must be a whole number from ${LIMITS.epochs[0]} to ${LIMITS.epochs[1]}` };
  const config = { epochs, models, lr_schedule: $("lr_schedule").value, precision: $("precision").value };
  if ($("train_samples").value !== "") {
    const samples = Number($("train_samples").value);
    if (!isInt(samples, LIMITS.train_samples)) return { error: `training images must be a whole number from ${LIMITS.train_samples[0]} to ${LIMITS.train_samples[1].toLocaleString("en-US")} (or empty for all)` };
    config.train_samples = samples;
  }
  const seed = Number($("seed").value);
  if (!isInt(seed, LIMITS.seed)) return { error: `seed must be a whole number from ${LIMITS.seed[0]} to ${LIMITS.seed[1]}` };
  config.seed = seed;
  return { config };
}

function fillForm(config) {
  // The form as it was for a run (its config.json): models, then the run settings.
  $("model-rows").replaceChildren();
  (config.models || DEFAULTS.models).forEach((m) => addModelRow(m));
  $("epochs").value = String(config.epochs ?? DEFAULTS.epochs);
  $("lr_schedule").value = config.lr_schedule ?? DEFAULTS.lr_schedule;
  $("precision").value = config.precision ?? DEFAULTS.precision;
  $("train_samples").value = config.train_samples ? String(config.train_samples) : "";
  $("seed").value = String(config.seed ?? DEFAULTS.seed);
}

function announce(message) {
  // Said politely by screen readers; only state changes and results, never every poll.
  $("announcer").textContent = message;
}

function showFormError(message) {
  $("form-error").textContent = message || "";
  $("form-error").hidden = !message;
}

async function startTraining(event) {
  event.preventDefault();
  const { config, error } = readForm();
  if (error) { showFormError(error); return; }
  showFormError("");
  $("start").disabled = true;
  const result = await postJSON("/start_training", config);
  if (!result.ok) {
    showFormError(result.data.error || `could not start (HTTP ${result.status})`);
    $("start").disabled = false;
    return;
  }
  viewedRunId = null;
  pollNow();
}

async function stopTraining() {
  $("stop").disabled = true;
  const result = await postJSON("/stop_training", {});
  if (!result.ok) showFormError(result.data.error || `could not stop (HTTP ${result.status})`);
  pollNow();
}

// ------------------------------------------------------------------ status

function renderStatus(status) {
  currentStatus = status;
  const active = SETTINGS.states.active.includes(status.state);
  const stateEl = $("state");
  stateEl.textContent = status.state;
  stateEl.className = `state ${status.state}`;
  const meta = [];
  if (status.run_id) meta.push(`run ${status.run_id}`);
  if (status.device) meta.push(`device ${status.device}`);
  if (status.precision) meta.push(`precision ${status.precision}`);
  if (status.lr_schedule) meta.push(`LR schedule ${status.lr_schedule}`);
  if (active && status.eta_seconds !== null && status.eta_seconds !== undefined) meta.push(`time left ≈ ${fmtSeconds(status.eta_seconds)}`);
  $("run-meta").textContent = meta.join(" · ");
  $("run-error").textContent = status.error || "";
  $("run-error").hidden = !status.error;
  const live = viewedRunId === null;
  $("viewing").hidden = live;
  $("start").disabled = active && live ? true : false;
  $("stop").disabled = !(active && status.state !== "stopping");
  renderModels(status.models || []);
  renderDownloads(status);
  renderImages(status);
  renderModelInfo();
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
      ["Batch", `${m.batch} / ${m.batches}`],
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
    const bar = el("div");
    bar.style.width = `${m.progress || 0}%`;
    bar.style.background = MODEL_COLORS[i];
    const title = `${m.name} [${(m.kernels || []).join(", ")}]`;
    const sub = `${m.optimizer || ""} · lr ${m.learning_rate ?? ""} · batch ${m.batch_size ?? ""} · ${m.parameters ? m.parameters.toLocaleString("en-US") + " parameters" : ""}`;
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

function modelColumn(index) {
  const id = `model-column-${index}`;
  let column = document.getElementById(id);
  if (!column) {
    column = el("div", { id, className: "model-column" });
    const columns = [...$("per-model").children];
    const after = columns.find((c) => Number(c.id.split("-").pop()) > index);
    $("per-model").insertBefore(column, after || null);
  }
  return column;
}

function setImage(container, key, url, caption, index) {
  const id = `img-${key}`;
  let fig = document.getElementById(id);
  if (!url) { if (fig) fig.remove(); delete shownImages[id]; return; }
  if (!fig) {
    fig = el("figure", { id }, el("figcaption", { text: caption }), el("img", { alt: caption }));
    container.append(fig);
  }
  fig.querySelector("figcaption").style.color = MODEL_COLORS[index] || "";
  if (shownImages[id] !== url) { // only fetch an image when its version changed
    fig.querySelector("img").src = url;
    shownImages[id] = url;
  }
}

function renderImages(status) {
  const images = status.images || {};
  $("curves-figure").hidden = !images.curves;
  if (images.curves) $("curves-figure").href = images.curves;
  const models = status.models || [];
  const captions = { samples: "sample predictions", errors: "misclassified digits", confusion: "confusion matrix" };
  for (let i = 0; i < LIMITS.models[1]; i++) {
    const m = models[i];
    const column = modelColumn(i);
    for (const [kind, caption] of Object.entries(captions)) {
      setImage(column, `${kind}-${i}`, m && m.images && m.images[kind], `${m ? m.name : ""}: ${caption}`, i);
    }
    if (!column.children.length) column.remove();
  }
}

async function renderModelInfo() {
  // Layers of the run's models when one is shown, else of the form's models.
  const source = currentStatus && currentStatus.models && currentStatus.models.length
    ? currentStatus.models.map((m) => ({ name: m.name, kernels: m.kernels }))
    : [...$("model-rows").children].map((tr) => ({ name: tr.querySelector(".name").value, kernels: readKernels(tr) }));
  const key = JSON.stringify(source);
  const box = $("model-info");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const grid = el("div", { className: "model-info-grid" });
  for (const [i, m] of source.entries()) {
    if (!m.kernels.every((k) => isInt(k, LIMITS.kernels))) continue;
    let info;
    try { info = await fetchModelInfo(m.kernels); } catch (_) { continue; }
    const table = el("table", { className: "layers" }, el("tr", {}, ...["Layer", "Weight shape", "Output shape", "Parameters"].map((h) => el("th", { text: h }))));
    for (const layer of info.layers) {
      table.append(el("tr", {}, el("td", { text: layer.type }), el("td", { text: layer.weight_shape ? layer.weight_shape.join("×") : "–" }),
        el("td", { text: layer.output_shape.join("×") }), el("td", { text: layer.parameters.toLocaleString("en-US") })));
    }
    const heading = el("h3", { text: `${m.name}: ${info.total_parameters.toLocaleString("en-US")} parameters, ${(info.macs_per_image / 1e6).toFixed(1)} M multiply-adds per image` });
    heading.style.color = MODEL_COLORS[i];
    grid.append(el("div", {}, heading, table));
  }
  if (box.dataset.key === key) box.replaceChildren(grid);
}

// ------------------------------------------------------------------ polling

let pollTimer = null;
let pollInFlight = false; // one request chain at a time: polls never overlap
let pollSoon = false;     // a poll was asked for while one was in flight

async function fetchStatus() {
  const url = viewedRunId ? `/runs/${encodeURIComponent(viewedRunId)}` : "/training_status";
  const response = await fetch(url, { cache: "no-cache" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const text = await response.text();
  if (text !== lastStatusText) { // unchanged: nothing to redraw
    lastStatusText = text;
    renderStatus(JSON.parse(text));
  }
}

async function fetchRuns() {
  const response = await fetch("/runs", { cache: "no-cache" });
  if (!response.ok) return;
  const text = await response.text();
  if (text === lastRunsText) return;
  lastRunsText = text;
  renderHistory(JSON.parse(text).runs);
}

function refreshCurveRuns() {
  // The runs the curves show: the compared ones, else the run shown in the status panel.
  if (history_.compareIds.length) {
    setCurveRuns(comparedRuns().map((r, i) => ({ runId: r.run_id, label: runLabel(r, i), names: r.models.map((m) => m.name) })));
  } else if (currentStatus && currentStatus.run_id) {
    setCurveRuns([{ runId: currentStatus.run_id, label: currentStatus.run_id, names: currentStatus.models.map((m) => m.name) }]);
  } else {
    setCurveRuns([]);
  }
}

function openRun(runId) {
  viewedRunId = runId;
  lastStatusText = "";
  pollNow();
}

async function poll() {
  pollInFlight = true;
  try {
    await fetchStatus();
    await fetchRuns();
    refreshCurveRuns();
    await updateCurves(); // after the status: the curves are never older than the numbers beside them
  } catch (err) {
    $("run-meta").textContent = `server not reachable (${err.message}); retrying`;
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

// ------------------------------------------------------------------ drawing

function setupCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "black"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
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
  const end = () => { if (drawing) { drawing = false; predictDigit(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("clear-canvas").addEventListener("click", () => { clear(); $("prediction-bars").replaceChildren(); });
  $("predict").addEventListener("click", predictDigit);
}

async function predictDigit() {
  const body = { image: $("canvas").toDataURL("image/png") };
  const runId = viewedRunId || (currentStatus && currentStatus.run_id);
  if (runId) body.run_id = runId;
  const result = await postJSON("/predict", body);
  const box = $("prediction-bars");
  if (!result.ok) { box.replaceChildren(el("p", { className: "error", text: result.data.error || `HTTP ${result.status}` })); return; }
  box.replaceChildren();
  result.data.predictions.forEach((p, i) => {
    const grid = el("div", { className: "bars", "data-model": p.model });
    p.probabilities.forEach((prob, digit) => {
      const bar = el("div", { className: "bar" });
      bar.style.width = `${Math.max(1, prob * 100)}%`;
      bar.style.background = MODEL_COLORS[i];
      const cls = digit === p.digit ? "best" : "";
      grid.append(el("span", { className: cls, text: String(digit) }), el("div", {}, bar), el("span", { className: cls, text: `${(prob * 100).toFixed(1)}%` }));
    });
    const heading = el("h3", { className: "prediction", text: `${p.model}: ${p.digit}` });
    heading.style.color = MODEL_COLORS[i];
    box.append(el("div", {}, heading, grid));
  });
}

// ------------------------------------------------------------------ start

async function loadSettings() {
  // Retries until the server answers: the form cannot be built without its limits.
  for (;;) {
    try {
      const response = await fetch("/config");
      if (response.ok) return await response.json();
      $("run-meta").textContent = `could not load the settings (HTTP ${response.status}); retrying`;
    } catch (err) {
      $("run-meta").textContent = `server not reachable (${err.message}); retrying`;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function applySettings(settings) {
  SETTINGS = settings;
  Object.assign(DEFAULTS, settings.defaults);
  Object.assign(LIMITS, settings.limits);
  const bounds = { epochs: LIMITS.epochs, train_samples: LIMITS.train_samples };
  for (const [id, [low, high]] of Object.entries(bounds)) { $(id).min = String(low); $(id).max = String(high); }
  $("epochs").value = String(DEFAULTS.epochs);
  $("seed").min = String(LIMITS.seed[0]);
  $("seed").max = String(LIMITS.seed[1]);
  $("seed").value = String(DEFAULTS.seed);
  $("train_samples").placeholder = `all ${LIMITS.train_samples[1].toLocaleString("en-US")}`;
  const labels = { onecycle: "one-cycle", none: "constant", auto: "auto", fp32: "fp32", bf16: "bf16" };
  for (const key of ["lr_schedule", "precision"]) {
    $(key).replaceChildren(...settings.choices[key].map((value) => el("option", { value, text: labels[value] || value })));
    $(key).value = DEFAULTS[key];
  }
}

async function init() {
  applySettings(await loadSettings());
  DEFAULTS.models.forEach((m) => addModelRow(m));
  $("add-model").addEventListener("click", () => addModelRow({ name: `Model ${$("model-rows").children.length + 1}` }));
  $("train-form").addEventListener("submit", startTraining);
  $("stop").addEventListener("click", stopTraining);
  $("back-live").addEventListener("click", () => { viewedRunId = null; lastStatusText = ""; pollNow(); });
  setupCanvas();
  setupCharts();
  setupHistory();
  poll();
}

document.addEventListener("DOMContentLoaded", init);
