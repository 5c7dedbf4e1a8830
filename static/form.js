// The settings form: one row per model, the run settings, errors next to their fields, and the
// last submitted settings remembered across reloads. Limits and defaults come from GET /config.

import { $, el, MODEL_COLORS, usePalette } from "./common.js";
import { CHOICE_NAMES, OPTIMIZER_NAMES, useLabels } from "./names.js";
import { state } from "./state.js";
import {
  defaults, limits, listValues, readKernels, rowLabel, rowProblems, setFieldError, showFormError,
  maxSweepRuns, sweepFields, sweepSize, tooManyRuns, validateForm,
} from "./formcheck.js";
import { renderModelInfo, scheduleModelInfo } from "./modelinfo.js";

// The checks other panels use, offered here too: the form is one panel to them.
export { showFormError, validateForm } from "./formcheck.js";

const FORM_STORAGE_KEY = "mnist-monitor-form"; // localStorage: the last settings that started a run
// Which input of a model row holds each field of the config (server errors name these fields).
const ROW_FIELDS = { name: "name", kernels: "kernels", optimizer: "optimizer", learning_rate: "lr", batch_size: "batch" };
const FIELD_WORDS = { name: "name", kernels: "kernels", optimizer: "optimizer", learning_rate: "learning rate", batch_size: "batch size",
  epochs: "epochs", train_samples: "training images", seed: "seed", lr_schedule: "LR schedule", precision: "precision",
  warmup: "warm-up share", label_smoothing: "label smoothing" };
function sweepOrder() {
  // How queued runs go: one after another, or as many at once as the server has workers.
  return state.workers > 1 ? `${state.workers} at a time, as workers come free` : "one after another";
}

function sweepHint() {
  return `Several learning rates or batch sizes, separated by commas (0.001, 0.003, 0.01), give one run per value: a sweep, queued to run ${sweepOrder()}.`;
}

// ------------------------------------------------------------------ rows

function nextModelName() {
  const names = new Set([...document.querySelectorAll("#model-rows .name")].map((i) => i.value.trim()));
  for (let n = 1; ; n++) if (!names.has(`Model ${n}`)) return `Model ${n}`;
}

function fieldCell(key, label, ...inputs) {
  // A cell with its inputs and the message that explains what is wrong with them.
  return el("td", { className: `cell-${key}`, "data-label": label }, ...inputs, el("span", { className: "field-error", hidden: "" }));
}

function rowInputs(model) {
  // The inputs of a model row, filled with the model's settings (or the defaults).
  const bounds = limits();
  const kernels = model.kernels || defaults().models[defaults().models.length - 1].kernels;
  const name = el("input", { className: "name", type: "text", maxlength: String(bounds.name_length[1]), value: model.name || nextModelName() });
  const kernelInputs = kernels.map((k) => el("input", { className: "kernel", type: "number", inputmode: "numeric", step: "1", value: String(k) }));
  const optimizer = el("select", { className: "optimizer" }, ...state.settings.choices.optimizer.map((v) => el("option", { value: v, text: OPTIMIZER_NAMES[v] || v })));
  optimizer.value = model.optimizer || defaults().optimizer;
  // Text, not number inputs: several values separated by commas make a sweep (one run each).
  const lr = el("input", { className: "lr", type: "text", inputmode: "decimal", spellcheck: "false", value: String(model.learning_rate || defaults().learning_rate),
    title: `greater than ${bounds.learning_rate[0]}, at most ${bounds.learning_rate[1]}; several values separated by commas give one run each` });
  const batch = el("input", { className: "batch", type: "text", inputmode: "numeric", spellcheck: "false", value: String(model.batch_size || defaults().batch_size),
    title: `${bounds.batch_size[0]} to ${bounds.batch_size[1]}; several values separated by commas give one run each` });
  return { name, kernelInputs, optimizer, lr, batch };
}

export function addModelRow(model = {}) {
  const rows = $("model-rows");
  if (rows.children.length >= limits().models[1]) return;
  const { name, kernelInputs, optimizer, lr, batch } = rowInputs(model);
  const tr = el("tr", { className: "model-row" });
  tr.dataset.color = String(freeColor(model.color)); // the row's colour for its life in the form
  const remove = el("button", { type: "button", className: "remove", text: "✕" });
  remove.addEventListener("click", () => { tr.remove(); refreshRows(); });
  tr.append(el("td", {}, el("span", { className: "swatch", "aria-hidden": "true" })), fieldCell("name", "Name", name),
    fieldCell("kernels", "Conv kernels", el("span", { className: "kernel-group" }, ...kernelInputs)),
    el("td", { "data-label": "Optimizer" }, optimizer), fieldCell("lr", "Learning rate", lr), fieldCell("batch", "Batch size", batch),
    el("td", { className: "params", "data-label": "Parameters", text: "…" }), el("td", {}, remove));
  rows.append(tr);
  for (const input of kernelInputs) input.addEventListener("input", () => scheduleModelInfo(tr));
  for (const input of tr.querySelectorAll("input")) input.addEventListener("input", () => { if (input.getAttribute("aria-invalid")) validateForm(false, true); });
  for (const input of [lr, batch]) input.addEventListener("input", renderSweep);
  name.addEventListener("change", refreshRows); // the row's labels, hints and errors use its name
  refreshRows();
  scheduleModelInfo(tr);
}

function freeColor(wanted) {
  // ``wanted`` (a row filled from a config) if no row has it, else the first colour no row has.
  const taken = [...$("model-rows").children].map((tr) => Number(tr.dataset.color));
  if (Number.isInteger(wanted) && !taken.includes(wanted)) return wanted;
  return MODEL_COLORS.findIndex((_, c) => !taken.includes(c));
}

function refreshRows() {
  // Labels say the row's name ("Model 2 learning rate"); its colour is its own (from when it was
  // added); ids follow its position.
  const rows = [...$("model-rows").children];
  rows.forEach((tr, i) => {
    const label = rowLabel(tr, i);
    tr.querySelector(".swatch").style.background = MODEL_COLORS[Number(tr.dataset.color)];
    tr.querySelector(".name").setAttribute("aria-label", `row ${i + 1}: model name`); // the field that holds the name
    tr.querySelectorAll(".kernel").forEach((input, k) => input.setAttribute("aria-label", `${label} conv ${k + 1} channels`));
    tr.querySelector(".optimizer").setAttribute("aria-label", `${label} optimizer`);
    tr.querySelector(".lr").setAttribute("aria-label", `${label} learning rate`);
    tr.querySelector(".batch").setAttribute("aria-label", `${label} batch size`);
    const remove = tr.querySelector(".remove");
    remove.setAttribute("aria-label", `Remove ${label}`);
    remove.title = `remove ${label}`;
    remove.disabled = rows.length <= 1;
    tr.querySelectorAll(".field-error").forEach((msg) => { msg.id = `m${i}-${msg.parentElement.className.slice(5)}-error`; });
  });
  renderSweep();
  const full = rows.length >= limits().models[1];
  $("add-model").disabled = full;
  $("add-model").title = full ? `at most ${limits().models[1]} models` : "";
  renderModelInfo();
}

// ------------------------------------------------------------------ sweeps

function sweepProblem() {
  // What is wrong first with values that look like a sweep (commas, or values separated by spaces).
  const looksLikeSweep = (text) => /,|\S\s+\S/.test(text.trim());
  const rows = [...$("model-rows").children];
  const bad = rows.flatMap((tr, row) => ["lr", "batch"].filter((k) => looksLikeSweep(tr.querySelector(`.${k}`).value))
    .map((k) => rowProblems(tr, rowLabel(tr, row))[k])).find(Boolean);
  return bad || (sweepSize() > maxSweepRuns() ? tooManyRuns() : "");
}

export function renderSweep() {
  // The buttons say how many runs they make; the hint says which (or what is wrong first).
  const fields = sweepFields();
  const n = sweepSize();
  const hint = $("sweep-hint");
  $("start").textContent = n > 1 ? `Start ${n} runs` : "Start Training";
  $("queue").textContent = n > 1 ? `Queue ${n} runs` : "Queue";
  const problem = sweepProblem();
  hint.classList.toggle("error", Boolean(problem));
  hint.classList.toggle("muted", !problem);
  if (problem) { // the buttons promise no count until the values are right
    hint.textContent = problem;
    $("start").textContent = "Start Training";
    $("queue").textContent = "Queue";
    return;
  }
  if (!fields.length) {
    hint.textContent = sweepHint();
    return;
  }
  const words = { learning_rate: "learning rate", batch_size: "batch size" };
  const rows = [...$("model-rows").children];
  const parts = fields.map((f) => `${rowLabel(rows[f.row], f.row)} ${words[f.key]} ${f.values.join(" / ")}`);
  hint.textContent = `Sweep of ${n} runs (${parts.join("; ")}): its runs go through the queue and train ${sweepOrder()}; the Sweeps panel shows them side by side as they train.`;
}

// ------------------------------------------------------------------ reading

export function readForm() {
  // The form's settings as one start body (the first value where a field lists several).
  const models = [...$("model-rows").children].map((tr) => ({
    name: tr.querySelector(".name").value.trim(), kernels: readKernels(tr), optimizer: tr.querySelector(".optimizer").value,
    learning_rate: Number(listValues(tr.querySelector(".lr").value)[0]), batch_size: Number(listValues(tr.querySelector(".batch").value)[0]),
    color: Number(tr.dataset.color),
  }));
  const config = { epochs: Number($("epochs").value), models, lr_schedule: $("lr_schedule").value, precision: $("precision").value,
    seed: Number($("seed").value), warmup: Number($("warmup").value), label_smoothing: Number($("label_smoothing").value) };
  if ($("train_samples").value !== "") config.train_samples = Number($("train_samples").value);
  return config;
}

export function readForms() {
  // One config per combination of the values in the form (a single config without a sweep).
  let configs = [readForm()];
  for (const f of sweepFields()) {
    configs = configs.flatMap((c) => f.values.map((v) => {
      const copy = JSON.parse(JSON.stringify(c));
      copy.models[f.row][f.key] = Number(v);
      return copy;
    }));
  }
  return configs;
}

export function readSweep() {
  // The form's values as a grid sweep (POST /sweeps): the base is the form with the first value of
  // each field; a field of one model varies that model's setting ("models[1].learning_rate"),
  // or the run's when there is only one model.
  const base = readForm();
  const grid = {};
  for (const f of sweepFields()) grid[base.models.length === 1 ? f.key : `models[${f.row}].${f.key}`] = f.values.map(Number);
  return { base, grid };
}

export function formAsTyped() {
  // The form's settings with a sweep's values as typed ("0.001, 0.003"), to fill the form again.
  const config = readForm();
  for (const f of sweepFields()) config.models[f.row][f.key] = f.values.join(", ");
  return config;
}

export function showServerError(error, field) {
  // A server-side refusal, next to its field where it names one, in the page's words.
  const match = /^models\[(\d+)\]\.(\w+)/.exec(field || "");
  const problem = field && error.startsWith(`${field}: `) ? error.slice(field.length + 2) : error;
  if (match) {
    const row = $("model-rows").children[Number(match[1])];
    const key = ROW_FIELDS[match[2]];
    if (row && key && row.querySelector(`.cell-${key}`)) {
      const words = FIELD_WORDS[match[2]];
      const text = problem.startsWith(words) ? problem : `${words} ${problem}`; // "batch size 4096 with ..." names itself
      setFieldError(row.querySelector(`.cell-${key}`), `${rowLabel(row, Number(match[1]))}: ${text}`);
      row.querySelector(`.cell-${key} input`).focus();
      return;
    }
  }
  if (field && $(field) && $(field).closest(".setting")) {
    setFieldError($(field).closest(".setting"), `${FIELD_WORDS[field] || field}: ${problem}`);
    $(field).focus();
    return;
  }
  showFormError(error);
}

// ------------------------------------------------------------------ filling and remembering

export function fillForm(config) {
  // The form as it was for a run (its config.json, or the last settings submitted).
  const start = defaults();
  $("model-rows").replaceChildren();
  (config.models && config.models.length ? config.models : start.models).slice(0, limits().models[1]).forEach((m) => addModelRow(m));
  $("epochs").value = String(config.epochs ?? start.epochs);
  const schedule = config.lr_schedule === "none" ? "constant" : config.lr_schedule; // the old word, in runs from before
  $("lr_schedule").value = schedule ?? start.lr_schedule;
  $("precision").value = config.precision ?? start.precision;
  $("train_samples").value = config.train_samples ? String(config.train_samples) : "";
  $("seed").value = String(config.seed ?? start.seed);
  $("warmup").value = String(config.warmup ?? start.warmup);
  $("label_smoothing").value = String(config.label_smoothing ?? start.label_smoothing);
  validateForm(false);
}

export function rememberForm(config) {
  try { localStorage.setItem(FORM_STORAGE_KEY, JSON.stringify(config)); } catch (_) { /* storage off: nothing to keep */ }
}

function rememberedForm() {
  try { return JSON.parse(localStorage.getItem(FORM_STORAGE_KEY) || "null"); } catch (_) { return null; }
}

export function applySettings(settings) {
  // The form built from GET /config: its choices, limits and defaults, then the remembered settings.
  state.settings = settings;
  usePalette(settings.colors);
  useLabels(settings.labels);
  $("optimizer-advice").replaceChildren(...Object.entries(settings.advice.optimizer).flatMap(([name, advice]) => [
    el("dt", { text: OPTIMIZER_NAMES[name] || name }), el("dd", { text: advice })]));
  $("train_samples").placeholder = `all ${limits().train_samples[1].toLocaleString("en-US")}`;
  for (const key of ["lr_schedule", "precision"]) {
    $(key).replaceChildren(...settings.choices[key].map((value) => el("option", { value, text: CHOICE_NAMES[value] || value })));
  }
  for (const id of ["epochs", "train_samples", "seed", "warmup", "label_smoothing"]) {
    $(id).addEventListener("input", () => { if ($(id).getAttribute("aria-invalid")) validateForm(false, true); });
  }
  fillForm(rememberedForm() || {});
}

export function setupForm() {
  // What works before the settings arrive: the rows themselves come with them (applySettings).
  $("add-model").addEventListener("click", () => addModelRow({}));
  $("train-form").addEventListener("focusout", (event) => { // a field is checked when it is left
    if (!state.settings || !event.target.matches("input")) return;
    event.target.dataset.touched = "true";
    validateForm(false, true);
  });
}
