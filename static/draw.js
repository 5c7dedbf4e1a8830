// "Draw a digit": the canvas, a test digit picked by number (or clicked in a picture), each
// model's answer as bars of the 10 probabilities, and what each layer sees ("Inside the network").

import { $, el, modelColor, send } from "./common.js";
import { announce } from "./notify.js";
import { state } from "./state.js";
import { currentView, setUrl, urlParam } from "./url.js";
import { goToView } from "./views.js";
import { mayAct, ownerText } from "./owners.js";

function clearCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "black";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function setupDrawing(canvas) {
  // Strokes by mouse, pen or finger; the models answer when it is lifted.
  const ctx = canvas.getContext("2d");
  const stroke = { drawing: false, last: null };
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return { x: (event.clientX - rect.left) * (canvas.width / rect.width), y: (event.clientY - rect.top) * (canvas.height / rect.height) };
  };
  canvas.addEventListener("pointerdown", (event) => {
    stroke.drawing = true; stroke.last = point(event); canvas.setPointerCapture(event.pointerId);
    ctx.fillStyle = "white"; ctx.beginPath(); ctx.arc(stroke.last.x, stroke.last.y, 9, 0, 2 * Math.PI); ctx.fill();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!stroke.drawing) return;
    const p = point(event);
    ctx.strokeStyle = "white"; ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(stroke.last.x, stroke.last.y); ctx.lineTo(p.x, p.y); ctx.stroke();
    stroke.last = p;
  });
  const end = () => { if (stroke.drawing) { stroke.drawing = false; predict({ image: canvas.toDataURL("image/png") }); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function predictTestDigit() {
  const index = Number($("test-index").value);
  if (!Number.isInteger(index) || index < 0 || index > 9999 || $("test-index").value === "") {
    showPredictionError("Pick a test digit number from 0 to 9,999.");
    $("test-index").setAttribute("aria-invalid", "true");
    return;
  }
  $("test-index").removeAttribute("aria-invalid");
  clearCanvas(); // the answers are about the test digit now, not a drawing
  predict({ test_index: index });
}

export function setupCanvas() {
  clearCanvas();
  $("explore-run").addEventListener("change", (event) => {
    state.exploreRunId = event.target.value;
    setUrl({ run: event.target.value }, false);
    renderExploreRuns();
    if (state.lastDigit) predict({ ...state.lastDigit }); // the same digit, read by this run's models
  });
  setupDrawing($("canvas"));
  $("clear-canvas").addEventListener("click", () => { clearCanvas(); state.lastDigit = null; $("prediction-bars").replaceChildren(); $("test-digit-image").hidden = true; });
  $("predict-test-digit").addEventListener("click", predictTestDigit);
  $("test-index").addEventListener("keydown", (event) => { if (event.key === "Enter") predictTestDigit(); });
}

export function pickDigit(event, img, kind, index) {
  // A click on a digit of a grid picture: which test digit it is, then what the models make of it.
  const grid = state.settings.digit_grid;
  const x = (event.offsetX * img.naturalWidth) / img.clientWidth;
  const y = (event.offsetY * img.naturalHeight) / img.clientHeight - grid.top;
  const column = Math.floor(x / grid.cell[0]);
  const position = Math.floor(y / grid.cell[1]) * grid.columns + column;
  if (y < 0 || column >= grid.columns) return;
  const testIndex = kind === "samples" ? position : (state.misclassified[index] || [])[position];
  if (testIndex === undefined || (kind === "samples" && position >= grid.samples)) return;
  $("test-index").value = String(testIndex);
  clearCanvas();
  const runId = state.currentStatus && state.currentStatus.run_id; // the run whose pictures were clicked
  goToView("explore", runId ? { run: runId } : {});
  predict({ test_index: testIndex });
}

// ------------------------------------------------------------------ the run explored

function checkpointRuns() {
  // The runs a drawing can be read by (newest first): those with an epoch-end checkpoint.
  return state.runs.filter((r) => r.has_checkpoint).sort((a, b) => (a.run_id < b.run_id ? 1 : -1));
}

export function exploreRun() {
  // The run the address names, else the newest with a checkpoint (in a class, a student's own
  // first) (null: none yet).
  if (state.exploreRunId) return state.runs.find((r) => r.run_id === state.exploreRunId) || { run_id: state.exploreRunId, models: [] };
  const runs = checkpointRuns();
  return runs.find((r) => mayAct(r.owner)) || runs[0] || null;
}

function runText(r) {
  const when = r.started_at ? new Date(r.started_at * 1000).toLocaleString() : r.run_id;
  const best = r.best_test_accuracy === null || r.best_test_accuracy === undefined ? "" : ` · best ${r.best_test_accuracy.toFixed(2)} %`;
  const whose = r.owner && ownerText(r.owner) !== "you" ? `${ownerText(r.owner)}'s · ` : ""; // in a class
  return `${whose}${when} · ${r.models.map((m) => m.name).join(", ")}${best} (${r.state || "not in the run list"})`;
}

export function renderExploreRuns() {
  // The picker: every run with a checkpoint, the one explored selected and named beside it.
  const runs = checkpointRuns();
  const run = exploreRun();
  if (run && !runs.some((r) => r.run_id === run.run_id)) runs.unshift(run);
  const picker = $("explore-run");
  const key = JSON.stringify(runs.map((r) => [r.run_id, runText(r)]));
  if (picker.dataset.key !== key) {
    picker.dataset.key = key;
    picker.replaceChildren(...runs.map((r) => el("option", { value: r.run_id, text: runText(r) })));
  }
  picker.value = run ? run.run_id : "";
  picker.disabled = !runs.length;
  const note = !run ? "No run has a checkpoint yet: train one (a checkpoint is saved at every epoch end)."
    : !run.has_checkpoint ? `Run ${run.run_id} has no checkpoint yet (one is saved at every epoch end).`
      : state.exploreRunId ? `run ${run.run_id}` : `run ${run.run_id}, the newest with a checkpoint`;
  if ($("explore-run-note").textContent !== note) $("explore-run-note").textContent = note;
}

export function applyExploreFromUrl() {
  // ?view=explore&run=<id>: that run; none: the newest with a checkpoint.
  if (currentView() !== "explore") return;
  const runId = urlParam("run");
  if (runId === state.exploreRunId) return;
  state.exploreRunId = runId;
  $("prediction-bars").replaceChildren(); // the answers were another run's
  renderExploreRuns();
}

function renderLayerViews(data) {
  const box = $("layer-views");
  const input = data.test_index !== undefined ? `test digit ${data.test_index} (a ${data.label})` : "your drawing";
  box.replaceChildren(el("figure", { className: "layer-input" }, el("figcaption", { text: `The input: ${input}, 28×28 as the models get it` }),
    el("img", { src: data.input_image, alt: `the input, ${input}, 28 by 28 pixels`, width: "112", height: "112" })));
  for (const p of data.predictions) {
    const from = p.epoch ? ` (weights of epoch ${p.epoch})` : "";
    const column = el("div", {}, el("h3", { className: "model-heading", text: `${p.model} reads ${p.digit}${from}` }));
    column.querySelector("h3").style.borderLeftColor = predictionColor(p);
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

function predictionColor(p) {
  // The answering model's colour: it is a model of the run explored.
  const run = exploreRun();
  return modelColor(run && run.models[p.index], p.index);
}

function showPredictionError(message) {
  // The error alone: the previous answer's digit picture would read as the answer to this request.
  $("prediction-bars").replaceChildren(el("p", { className: "error", role: "alert", text: message }));
  $("test-digit-image").hidden = true;
}

function predictionBars(p) {
  // One model's answer: its digit, and a bar per digit for the probability.
  const color = predictionColor(p);
  const grid = el("div", { className: "bars", "data-model": p.model, role: "list", "aria-label": `${p.model}: probability of each digit` });
  p.probabilities.forEach((prob, digit) => {
    const bar = el("div", { className: "bar" });
    bar.style.width = `${Math.max(1, prob * 100)}%`;
    bar.style.background = color;
    const cls = digit === p.digit ? "best" : "";
    grid.append(el("div", { className: "bar-row", role: "listitem", "aria-label": `${digit}: ${(prob * 100).toFixed(1)} %` },
      el("span", { className: cls, text: String(digit) }), el("div", {}, bar), el("span", { className: cls, text: `${(prob * 100).toFixed(1)}%` })));
  });
  const heading = el("h3", { className: "prediction model-heading", text: `${p.model}: ${p.digit}` });
  if (p.epoch) heading.append(el("span", { className: "muted", text: ` (epoch ${p.epoch} weights)` }));
  heading.style.borderLeftColor = color;
  return el("div", { className: "answer", "data-answer": p.model }, heading, grid);
}

async function predict(body) {
  // POST /predict with the explored run's checkpoints, the layers' activations included.
  state.lastDigit = { ...body }; // read again when another run is picked
  const run = exploreRun();
  if (run) body.run_id = run.run_id;
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
  if (data.test_index !== undefined) box.append(el("p", { className: "answers-label", text: `Test digit ${data.test_index}: its true label is ${data.label}.` }));
  for (const p of data.predictions) box.append(predictionBars(p));
  renderLayerViews(data);
  announce(data.predictions.map((p) => `${p.model} reads ${p.digit}`).join(", "));
}
