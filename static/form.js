"use strict";
// The settings form: one row per model, the run settings, errors next to their fields, and the
// last submitted settings remembered across reloads. Limits and defaults come from GET /config.

const INFO_DEBOUNCE_MS = 200; // wait for typing to pause before asking /model_info
const MAX_SWEEP_RUNS = 12; // runs one press may queue: a sweep of a dozen small CNNs is already hours on a CPU
const FORM_STORAGE_KEY = "mnist-monitor-form"; // localStorage: the last settings that started a run
let SETTINGS = null;
const DEFAULTS = {};
const LIMITS = {};
const OPTIMIZER_NAMES = { adam: "Adam", sgd: "SGD (momentum 0.9)" };
const CHOICE_NAMES = { onecycle: "one-cycle", none: "constant", auto: "auto", fp32: "fp32", bf16: "bf16" };
// Which input of a model row holds each field of the config (server errors name these fields).
const ROW_FIELDS = { name: "name", kernels: "kernels", optimizer: "optimizer", learning_rate: "lr", batch_size: "batch" };
const FIELD_WORDS = { name: "name", kernels: "kernels", optimizer: "optimizer", learning_rate: "learning rate", batch_size: "batch size",
  epochs: "epochs", train_samples: "training images", seed: "seed", lr_schedule: "LR schedule", precision: "precision",
  warmup: "warm-up share", label_smoothing: "label smoothing" };

function isInt(value, [low, high]) {
  return Number.isInteger(value) && value >= low && value <= high;
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

function addModelRow(model = {}) {
  const rows = $("model-rows");
  if (rows.children.length >= LIMITS.models[1]) return;
  const kernels = model.kernels || DEFAULTS.models[DEFAULTS.models.length - 1].kernels;
  const tr = el("tr", { className: "model-row" });
  const name = el("input", { className: "name", type: "text", maxlength: String(LIMITS.name_length[1]), value: model.name || nextModelName() });
  const kernelInputs = kernels.map((k) => el("input", { className: "kernel", type: "number", inputmode: "numeric", step: "1", value: String(k) }));
  const optimizer = el("select", { className: "optimizer" }, ...SETTINGS.choices.optimizer.map((v) => el("option", { value: v, text: OPTIMIZER_NAMES[v] || v })));
  optimizer.value = model.optimizer || DEFAULTS.optimizer;
  // Text, not number inputs: several values separated by commas make a sweep (one run each).
  const lr = el("input", { className: "lr", type: "text", inputmode: "decimal", spellcheck: "false", value: String(model.learning_rate || DEFAULTS.learning_rate),
    title: `greater than ${LIMITS.learning_rate[0]}, at most ${LIMITS.learning_rate[1]}; several values separated by commas give one run each` });
  const batch = el("input", { className: "batch", type: "text", inputmode: "numeric", spellcheck: "false", value: String(model.batch_size || DEFAULTS.batch_size),
    title: `${LIMITS.batch_size[0]} to ${LIMITS.batch_size[1]}; several values separated by commas give one run each` });
  const remove = el("button", { type: "button", className: "remove", text: "✕" });
  remove.addEventListener("click", () => { tr.remove(); refreshRows(); });
  tr.append(el("td", {}, el("span", { className: "swatch", "aria-hidden": "true" })), fieldCell("name", "Name", name),
    fieldCell("kernels", "Conv kernels", el("span", { className: "kernel-group" }, ...kernelInputs)),
    el("td", { "data-label": "Optimizer" }, optimizer), fieldCell("lr", "Learning rate", lr), fieldCell("batch", "Batch size", batch),
    el("td", { className: "params", "data-label": "Parameters", text: "…" }), el("td", {}, remove));
  rows.append(tr);
  for (const input of kernelInputs) input.addEventListener("input", () => scheduleModelInfo(tr));
  for (const input of tr.querySelectorAll("input")) input.addEventListener("input", () => { if (input.getAttribute("aria-invalid")) validateForm(false); });
  for (const input of [lr, batch]) input.addEventListener("input", renderSweep);
  refreshRows();
  scheduleModelInfo(tr);
}

function refreshRows() {
  // Labels, ids and colours follow the row's position: "Model 2 learning rate", and so on.
  const rows = [...$("model-rows").children];
  rows.forEach((tr, i) => {
    const label = `Model ${i + 1}`;
    tr.querySelector(".swatch").style.background = MODEL_COLORS[i];
    tr.querySelector(".name").setAttribute("aria-label", `${label} name`);
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
  $("add-model").disabled = rows.length >= LIMITS.models[1];
  $("add-model").title = rows.length >= LIMITS.models[1] ? `at most ${LIMITS.models[1]} models` : "";
  renderModelInfo();
}

function readKernels(tr) {
  return [...tr.querySelectorAll(".kernel")].map((input) => Number(input.value));
}

// ------------------------------------------------------------------ model information

const infoTimers = new WeakMap();
const infoCache = new Map(); // "32,64,64,64" -> /model_info answer

function scheduleModelInfo(tr) {
  clearTimeout(infoTimers.get(tr));
  infoTimers.set(tr, setTimeout(() => updateModelInfo(tr), INFO_DEBOUNCE_MS));
}

async function fetchModelInfo(kernels) {
  const key = kernels.join(",");
  if (!infoCache.has(key)) infoCache.set(key, await getJSON(`/model_info?kernels=${encodeURIComponent(key)}`));
  return infoCache.get(key);
}

async function updateModelInfo(tr) {
  const kernels = readKernels(tr);
  const cell = tr.querySelector(".params");
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

async function renderModelInfo() {
  // The layers of the models in the form: what Start would train.
  const source = [...$("model-rows").children].map((tr) => ({ name: tr.querySelector(".name").value, kernels: readKernels(tr) }));
  const key = JSON.stringify(source);
  const box = $("model-info");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const grid = el("div", { className: "model-info-grid" });
  for (const [i, m] of source.entries()) {
    if (!m.kernels.every((k) => isInt(k, LIMITS.kernels))) continue;
    let info;
    try { info = await fetchModelInfo(m.kernels); } catch (_) { continue; }
    const head = el("tr", {}, ...["Layer", "Weight shape", "Output shape", "Parameters"].map((h) => el("th", { scope: "col", text: h })));
    const table = el("table", { className: "layers" }, el("thead", {}, head));
    const body = el("tbody");
    for (const layer of info.layers) {
      body.append(el("tr", {}, el("td", { text: layer.type }), el("td", { text: layer.weight_shape ? layer.weight_shape.join("×") : "–" }),
        el("td", { text: layer.output_shape.join("×") }), el("td", { text: layer.parameters.toLocaleString("en-US") })));
    }
    table.append(body);
    const heading = el("h3", { className: "model-heading", text: `${m.name}: ${info.total_parameters.toLocaleString("en-US")} parameters, ${(info.macs_per_image / 1e6).toFixed(1)} M multiply-adds per image` });
    heading.style.borderLeftColor = MODEL_COLORS[i];
    grid.append(el("div", {}, heading, el("div", { className: "table-scroll" }, table)));
  }
  if (box.dataset.key === key) box.replaceChildren(grid);
}

// ------------------------------------------------------------------ reading and checking

function setFieldError(cell, message, isBad = () => true) {
  // The cell's inputs (those ``isBad`` picks) are marked invalid and described by the message.
  const msg = cell.querySelector(".field-error");
  msg.textContent = message || "";
  msg.hidden = !message;
  for (const input of cell.querySelectorAll("input, select")) {
    if (message && isBad(input)) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", msg.id);
    } else {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }
}

function rowProblems(tr, label) {
  const problems = {};
  const name = tr.querySelector(".name").value.trim();
  if (!name) problems.name = `${label}: give it a name`;
  else if (name.length > LIMITS.name_length[1]) problems.name = `${label}: at most ${LIMITS.name_length[1]} characters`;
  if (!readKernels(tr).every((k) => isInt(k, LIMITS.kernels)) || [...tr.querySelectorAll(".kernel")].some((i) => i.value === "")) {
    problems.kernels = `${label}: kernels must be whole numbers from ${LIMITS.kernels[0]} to ${LIMITS.kernels[1]}`;
  }
  const lr = (v) => Number(v) > LIMITS.learning_rate[0] && Number(v) <= LIMITS.learning_rate[1];
  const lrProblem = listProblem(tr.querySelector(".lr").value, lr, `learning rate must be greater than ${LIMITS.learning_rate[0]} and at most ${LIMITS.learning_rate[1]}`);
  if (lrProblem) problems.lr = `${label}: ${lrProblem}`;
  const batchProblem = listProblem(tr.querySelector(".batch").value, (v) => isInt(Number(v), LIMITS.batch_size),
    `batch size must be a whole number from ${LIMITS.batch_size[0]} to ${LIMITS.batch_size[1]}`);
  if (batchProblem) problems.batch = `${label}: ${batchProblem}`;
  return problems;
}

function settingProblems() {
  const problems = {};
  if (!isInt(Number($("epochs").value), LIMITS.epochs) || $("epochs").value === "") {
    problems.epochs = `epochs must be a whole number from ${LIMITS.epochs[0]} to ${LIMITS.epochs[1]}`;
  }
  if ($("train_samples").value !== "" && !isInt(Number($("train_samples").value), LIMITS.train_samples)) {
    problems.train_samples = `training images must be a whole number from ${LIMITS.train_samples[0]} to ${LIMITS.train_samples[1].toLocaleString("en-US")} (or empty for all)`;
  }
  if (!isInt(Number($("seed").value), LIMITS.seed) || $("seed").value === "") {
    problems.seed = `seed must be a whole number from ${LIMITS.seed[0]} to ${LIMITS.seed[1]}`;
  }
  for (const [key, words] of [["warmup", "warm-up share"], ["label_smoothing", "label smoothing"]]) {
    const value = Number($(key).value);
    if ($(key).value === "" || !(value >= LIMITS[key][0] && value <= LIMITS[key][1])) {
      problems[key] = `${words} must be a number from ${LIMITS[key][0]} to ${LIMITS[key][1]}`;
    }
  }
  return problems;
}

function validateForm(focus = true) {
  // Marks every problem next to its field; true if there is none.
  const rows = [...$("model-rows").children];
  const perRow = rows.map((tr, i) => rowProblems(tr, `Model ${i + 1}`));
  const names = rows.map((tr) => tr.querySelector(".name").value.trim());
  names.forEach((name, i) => {  // as the server compares them: spaces around and letter case do not count
    const same = names.map((n, j) => (n.toLowerCase() === name.toLowerCase() && name ? j : -1)).filter((j) => j >= 0);
    if (same.length > 1 && !perRow[i].name) {
      perRow[i].name = `${same.map((j) => `Model ${j + 1}`).join(" and ")} have the same name "${name}": names must differ`;
    }
  });
  const badKernel = (input) => input.value === "" || !isInt(Number(input.value), LIMITS.kernels);
  rows.forEach((tr, i) => {
    for (const key of ["name", "kernels", "lr", "batch"]) {
      setFieldError(tr.querySelector(`.cell-${key}`), perRow[i][key], key === "kernels" ? badKernel : undefined);
    }
  });
  const settings = settingProblems();
  for (const key of ["epochs", "train_samples", "seed", "warmup", "label_smoothing"]) setFieldError($(key).closest(".setting"), settings[key]);
  const invalid = document.querySelector("#train-form [aria-invalid=true]");
  if (invalid && focus) invalid.focus();
  if (!invalid && sweepSize() > MAX_SWEEP_RUNS) {
    showFormError(tooManyRuns());
    return false;
  }
  return !invalid;
}

// ------------------------------------------------------------------ sweeps

function listValues(text) {
  // "0.001, 0.003,0.01" -> ["0.001", "0.003", "0.01"]: one value, or several separated by commas.
  return text.split(",").map((v) => v.trim());
}

function listProblem(text, valid, rule) {
  // What is wrong with a field of one value or several separated by commas, in words; "" if nothing.
  const values = listValues(text);
  const several = values.length > 1;
  if (values.length === 1 && values[0] === "") return rule;
  if (values.includes("")) return "a value is missing: separate several values with single commas, e.g. 0.001, 0.003";
  for (const [i, v] of values.entries()) {
    if (/\s/.test(v)) return `"${v}": separate several values with commas, e.g. 0.001, 0.003`;
    if (v === "" || !Number.isFinite(Number(v))) return `"${v}" is not a number`;
    if (!valid(v)) return several ? `${rule}; ${v} is not` : rule;
    if (values.slice(0, i).some((w) => Number(w) === Number(v))) return `${v} is there twice: each value makes one run`;
  }
  return "";
}

function sweepFields() {
  // The fields with several values: [{row, key, cls, values}].
  const fields = [];
  [...$("model-rows").children].forEach((tr, row) => {
    for (const [key, cls] of [["learning_rate", ".lr"], ["batch_size", ".batch"]]) {
      const values = listValues(tr.querySelector(cls).value).filter((v) => v !== "");
      if (values.length > 1) fields.push({ row, key, cls, values });
    }
  });
  return fields;
}

function sweepSize() {
  return sweepFields().reduce((n, f) => n * f.values.length, 1);
}

function readForms() {
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

function tooManyRuns() {
  return `${sweepSize()} runs: a sweep can queue at most ${MAX_SWEEP_RUNS} at a time; use fewer values`;
}

function renderSweep() {
  // The buttons say how many runs they make; the hint says which (or what is wrong first).
  const fields = sweepFields();
  const n = sweepSize();
  const hint = $("sweep-hint");
  $("start").textContent = n > 1 ? `Start ${n} runs` : "Start Training";
  $("queue").textContent = n > 1 ? `Queue ${n} runs` : "Queue";
  const rows = [...$("model-rows").children];
  const looksLikeSweep = (text) => /,|\S\s+\S/.test(text.trim()); // commas, or values separated by spaces
  const bad = rows.flatMap((tr, row) => ["lr", "batch"].filter((k) => looksLikeSweep(tr.querySelector(`.${k}`).value))
    .map((k) => rowProblems(tr, `Model ${row + 1}`)[k])).find(Boolean);
  const problem = bad || (n > MAX_SWEEP_RUNS ? tooManyRuns() : "");
  hint.classList.toggle("error", Boolean(problem));
  hint.classList.toggle("muted", !problem);
  if (problem) { // the buttons promise no count until the values are right
    hint.textContent = problem;
    $("start").textContent = "Start Training";
    $("queue").textContent = "Queue";
    return;
  }
  if (!fields.length) {
    hint.textContent = "Several learning rates or batch sizes, separated by commas (0.001, 0.003, 0.01), give one run per value: a sweep, queued to run one after another.";
    return;
  }
  const words = { learning_rate: "learning rate", batch_size: "batch size" };
  const parts = fields.map((f) => `Model ${f.row + 1} ${words[f.key]} ${f.values.join(" / ")}`);
  hint.textContent = `Sweep of ${n} runs (${parts.join("; ")}): Queue puts them in line to run one after another (Start starts the first at once when nothing trains); compare them in the run history when they are done.`;
}

function formAsTyped() {
  // The form's settings with a sweep's values as typed ("0.001, 0.003"), to fill the form again.
  const config = readForm();
  for (const f of sweepFields()) config.models[f.row][f.key] = f.values.join(", ");
  return config;
}

function readForm() {
  const models = [...$("model-rows").children].map((tr) => ({
    name: tr.querySelector(".name").value.trim(), kernels: readKernels(tr), optimizer: tr.querySelector(".optimizer").value,
    learning_rate: Number(listValues(tr.querySelector(".lr").value)[0]), batch_size: Number(listValues(tr.querySelector(".batch").value)[0]),
  }));
  const config = { epochs: Number($("epochs").value), models, lr_schedule: $("lr_schedule").value, precision: $("precision").value,
    seed: Number($("seed").value), warmup: Number($("warmup").value), label_smoothing: Number($("label_smoothing").value) };
  if ($("train_samples").value !== "") config.train_samples = Number($("train_samples").value);
  return config;
}

function showServerError(error, field) {
  // A server-side refusal, next to its field where it names one, in the page's words.
  const match = /^models\[(\d+)\]\.(\w+)/.exec(field || "");
  const problem = field && error.startsWith(`${field}: `) ? error.slice(field.length + 2) : error;
  if (match) {
    const row = $("model-rows").children[Number(match[1])];
    const key = ROW_FIELDS[match[2]];
    if (row && key && row.querySelector(`.cell-${key}`)) {
      const words = FIELD_WORDS[match[2]];
      const text = problem.startsWith(words) ? problem : `${words} ${problem}`; // "batch size 4096 with ..." names itself
      setFieldError(row.querySelector(`.cell-${key}`), `Model ${Number(match[1]) + 1}: ${text}`);
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

function showFormError(message) {
  $("form-error").textContent = message || "";
  $("form-error").hidden = !message;
}

// ------------------------------------------------------------------ filling and remembering

function fillForm(config) {
  // The form as it was for a run (its config.json, or the last settings submitted).
  $("model-rows").replaceChildren();
  (config.models && config.models.length ? config.models : DEFAULTS.models).slice(0, LIMITS.models[1]).forEach((m) => addModelRow(m));
  $("epochs").value = String(config.epochs ?? DEFAULTS.epochs);
  $("lr_schedule").value = config.lr_schedule ?? DEFAULTS.lr_schedule;
  $("precision").value = config.precision ?? DEFAULTS.precision;
  $("train_samples").value = config.train_samples ? String(config.train_samples) : "";
  $("seed").value = String(config.seed ?? DEFAULTS.seed);
  $("warmup").value = String(config.warmup ?? DEFAULTS.warmup);
  $("label_smoothing").value = String(config.label_smoothing ?? DEFAULTS.label_smoothing);
  validateForm(false);
}

function rememberForm(config) {
  try { localStorage.setItem(FORM_STORAGE_KEY, JSON.stringify(config)); } catch (_) { /* storage off: nothing to keep */ }
}

function rememberedForm() {
  try { return JSON.parse(localStorage.getItem(FORM_STORAGE_KEY) || "null"); } catch (_) { return null; }
}

function applySettings(settings) {
  SETTINGS = settings;
  Object.assign(DEFAULTS, settings.defaults);
  Object.assign(LIMITS, settings.limits);
  $("train_samples").placeholder = `all ${LIMITS.train_samples[1].toLocaleString("en-US")}`;
  for (const key of ["lr_schedule", "precision"]) {
    $(key).replaceChildren(...settings.choices[key].map((value) => el("option", { value, text: CHOICE_NAMES[value] || value })));
  }
  for (const id of ["epochs", "train_samples", "seed", "warmup", "label_smoothing"]) {
    $(id).addEventListener("input", () => { if ($(id).getAttribute("aria-invalid")) validateForm(false); });
  }
  fillForm(rememberedForm() || {});
}
