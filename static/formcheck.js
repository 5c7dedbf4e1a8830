// Checking the settings form: each problem in words next to its field (marked invalid for
// assistive technology), and the sweeps that several comma-separated values make.

import { $ } from "./common.js";
import { state } from "./state.js";


export const limits = () => state.settings.limits; // from GET /config
export const defaults = () => state.settings.defaults;

export function isInt(value, [low, high]) {
  return Number.isInteger(value) && value >= low && value <= high;
}

export function readKernels(tr) {
  return [...tr.querySelectorAll(".kernel")].map((input) => Number(input.value));
}

export function showFormError(message, kind = "") {
  // ``kind`` "fields": the message says fields are marked, and goes once none is.
  $("form-error").textContent = message || "";
  $("form-error").hidden = !message;
  $("form-error").dataset.kind = message ? kind : "";
}

export function setFieldError(cell, message, isBad = () => true) {
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

// ------------------------------------------------------------------ one value or several

export function listValues(text) {
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

export function sweepFields() {
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

export function maxSweepRuns() {
  return limits().sweep_runs[1]; // the server's cap (GET /config)
}

export function sweepSize() {
  return sweepFields().reduce((n, f) => n * f.values.length, 1);
}

export function tooManyRuns() {
  return `${sweepSize()} runs: a sweep trains at most ${maxSweepRuns()}; use fewer values`;
}

// ------------------------------------------------------------------ the checks

export function rowLabel(tr, index) {
  // What every text calls a model row: its name, which it keeps when rows above it go; while it
  // has none, its place ("row 2": "Model 2" could be another row's name).
  return tr.querySelector(".name").value.trim() || `row ${index + 1}`;
}

export function rowProblems(tr, label) {
  const problems = {};
  const name = tr.querySelector(".name").value.trim();
  if (!name) problems.name = `${label}: give it a name`;
  else if (name.length > limits().name_length[1]) problems.name = `${label}: at most ${limits().name_length[1]} characters`;
  if (!readKernels(tr).every((k) => isInt(k, limits().kernels)) || [...tr.querySelectorAll(".kernel")].some((i) => i.value === "")) {
    problems.kernels = `${label}: kernels must be whole numbers from ${limits().kernels[0]} to ${limits().kernels[1]}`;
  }
  const [lrLow, lrHigh] = limits().learning_rate;
  const lr = (v) => Number(v) > lrLow && Number(v) <= lrHigh;
  const lrProblem = listProblem(tr.querySelector(".lr").value, lr, `learning rate must be greater than ${lrLow} and at most ${lrHigh}`);
  if (lrProblem) problems.lr = `${label}: ${lrProblem}`;
  const batchProblem = listProblem(tr.querySelector(".batch").value, (v) => isInt(Number(v), limits().batch_size),
    `batch size must be a whole number from ${limits().batch_size[0]} to ${limits().batch_size[1]}`);
  if (batchProblem) problems.batch = `${label}: ${batchProblem}`;
  return problems;
}

function settingProblems() {
  const problems = {};
  const bounds = limits();
  if (!isInt(Number($("epochs").value), bounds.epochs) || $("epochs").value === "") {
    problems.epochs = `epochs must be a whole number from ${bounds.epochs[0]} to ${bounds.epochs[1]}`;
  }
  if ($("train_samples").value !== "" && !isInt(Number($("train_samples").value), bounds.train_samples)) {
    problems.train_samples = `training images must be a whole number from ${bounds.train_samples[0]} to ${bounds.train_samples[1].toLocaleString("en-US")} (or empty for all)`;
  }
  if (!isInt(Number($("seed").value), bounds.seed) || $("seed").value === "") {
    problems.seed = `seed must be a whole number from ${bounds.seed[0]} to ${bounds.seed[1]}`;
  }
  for (const [key, words] of [["warmup", "warm-up share"], ["label_smoothing", "label smoothing"]]) {
    const value = Number($(key).value);
    if ($(key).value === "" || !(value >= bounds[key][0] && value <= bounds[key][1])) {
      problems[key] = `${words} must be a number from ${bounds[key][0]} to ${bounds[key][1]}`;
    }
  }
  return problems;
}

function sameNameProblems(rows, perRow) {
  // As the server compares names: spaces around and letter case do not count.
  const names = rows.map((tr) => tr.querySelector(".name").value.trim());
  names.forEach((name, i) => {
    const same = names.map((n, j) => (n.toLowerCase() === name.toLowerCase() && name ? j : -1)).filter((j) => j >= 0);
    if (same.length > 1 && !perRow[i].name) {
      perRow[i].name = `rows ${same.map((j) => j + 1).join(" and ")} have the same name "${name}": names must differ`;
    }
  });
}

export function validateForm(focus = true, touchedOnly = false) {
  // Marks every problem next to its field; true if there is none. ``touchedOnly``: only the fields
  // the user has left (or already marked): one left with a bad value is marked at once, and one
  // not reached yet is not.
  const rows = [...$("model-rows").children];
  const perRow = rows.map((tr, i) => rowProblems(tr, rowLabel(tr, i)));
  sameNameProblems(rows, perRow);
  const badKernel = (input) => input.value === "" || !isInt(Number(input.value), limits().kernels);
  const mark = (cell, message, isBad) => {
    if (!touchedOnly || cell.querySelector("[data-touched], [aria-invalid=true]")) setFieldError(cell, message, isBad);
  };
  rows.forEach((tr, i) => {
    for (const key of ["name", "kernels", "lr", "batch"]) {
      mark(tr.querySelector(`.cell-${key}`), perRow[i][key], key === "kernels" ? badKernel : undefined);
    }
  });
  const settings = settingProblems();
  for (const key of ["epochs", "train_samples", "seed", "warmup", "label_smoothing"]) mark($(key).closest(".setting"), settings[key]);
  const invalid = document.querySelector("#train-form [aria-invalid=true]");
  if (invalid && focus) invalid.focus();
  if (!invalid && $("form-error").dataset.kind === "fields") showFormError("");
  if (!invalid && !touchedOnly && sweepSize() > maxSweepRuns()) {
    showFormError(tooManyRuns());
    return false;
  }
  return !invalid;
}
