// The new-sweep form: a search (each setting fixed, a range or choices; the trials; the pruner) or
// a grid (each setting fixed or a list of values) over every setting a sweep can vary (GET /config
// says which), one model's own settings included, starting from the Train form's settings. It
// builds the POST /sweeps body, shows it for the command line, and sends it.

import { $, el, send } from "./common.js";
import { readForm, rememberForm } from "./form.js";
import { OPTIMIZER_NAMES } from "./names.js";
import { state } from "./state.js";
import { goToView } from "./views.js";

const WORDS = { learning_rate: "learning rate", batch_size: "batch size", optimizer: "optimizer", epochs: "epochs",
  warmup: "warm-up share", label_smoothing: "label smoothing", kernels: "kernels (4 layers)", seed: "seed" };
const EXAMPLES = { learning_rate: "0.0003, 0.001, 0.003", batch_size: "32, 64, 128", optimizer: "adam, sgd", epochs: "1, 2, 3",
  warmup: "0, 0.1", label_smoothing: "0, 0.1", kernels: "8,16,16,16; 32,64,64,64", seed: "0, 1, 2" };
const RANGES = { learning_rate: [0.0001, 0.1, true], batch_size: [16, 256, true], epochs: [1, 5, false], warmup: [0, 0.3, false],
  label_smoothing: [0, 0.2, false], seed: [0, 1000, false] }; // [low, high, log] offered when a range is picked
const PRUNER_WORDS = {
  median: "Median: after each epoch but the last, a trial stops when its best so far is below the median of the finished trials at that epoch. It waits until a quarter of the trials (3 to 5) have finished; the ones before run to the end.",
  successive_halving: "Successive halving: at epochs 1, 3, 9, ... (never the last), only the top third of the trials that reached that epoch so far go on; the first to arrive always does. Epochs cannot vary under it.",
  none: "None: every trial runs all its epochs.",
};
const LOG_SCALED = ["learning_rate", "batch_size"]; // the settings a log scale suits (both ends above 0, spanning decades)
const built = { kinds: {}, starting: false };

function kindOf(key) {
  // "float", "int", "str" or "list" (kernels): what values a setting takes.
  const own = /^models\[\d\]\.(\w+)$/.exec(key);
  return built.kinds[own ? own[1] : key];
}

function sweepKind() {
  return document.querySelector('input[name="sb-kind"]:checked').value;
}

function settingsOf(base) {
  // [key, words, value in the form] of every setting a sweep can vary with this base.
  const rows = Object.keys(built.kinds).filter((k) => k !== "kernels" || base.models.length === 1)
    .map((key) => [key, WORDS[key] || key, key === "kernels" ? base.models[0].kernels : key in base ? base[key] : base.models[0][key]]);
  if (base.models.length > 1) {
    base.models.forEach((model, i) => {
      for (const key of state.settings.sweeps.per_model) rows.push([`models[${i}].${key}`, `${model.name || `Model ${i + 1}`}: ${WORDS[key]}`, model[key]]);
    });
  }
  return rows;
}

function shown(value) {
  if (Array.isArray(value)) return value.join(",");
  if (value === undefined || value === null || value === "") return "default";
  return OPTIMIZER_NAMES[value] ? `${OPTIMIZER_NAMES[value]}` : String(value);
}

// ------------------------------------------------------------------ the rows

function howOptions(key) {
  const numeric = ["float", "int"].includes(kindOf(key));
  if (sweepKind() === "grid") return [["fixed", "fixed"], ["list", "a list of values"]];
  return [["fixed", "fixed"], ...(numeric ? [["range", "a range"]] : []), ["list", "choices"]];
}

function valuesCell(key, words, how) {
  // The inputs of a setting that varies: a list (values or choices), or a range.
  if (how === "list") {
    return [el("input", { type: "text", className: "sb-list", spellcheck: "false", "aria-label": `${words}: values, separated by commas${key.endsWith("kernels") ? " (semicolons between kernel lists)" : ""}`,
      placeholder: EXAMPLES[key.replace(/^models\[\d\]\./, "")] || "" })];
  }
  const [low, high, log] = RANGES[key.replace(/^models\[\d\]\./, "")] || [0, 1, false];
  return [el("label", { text: "from " }, el("input", { type: "number", step: "any", className: "sb-low", value: String(low), "aria-label": `${words}: lowest` })),
    el("label", { text: " to " }, el("input", { type: "number", step: "any", className: "sb-high", value: String(high), "aria-label": `${words}: highest` })),
    ...(LOG_SCALED.includes(key.replace(/^models\[\d\]\./, "")) ? [el("label", { className: "sb-log" },
      el("input", { type: "checkbox", className: "sb-logscale", ...(log ? { checked: "" } : {}) }), " log scale")] : [])];
}

function renderRow(tr) {
  const { key, words, fixed } = tr.dataset;
  const how = tr.querySelector("select").value;
  const cell = tr.querySelector(".sb-values");
  cell.replaceChildren(...(how === "fixed" ? [el("span", { className: "muted", text: `as in the Train form: ${fixed}` })] : valuesCell(key, words, how)),
    el("span", { className: "field-error", hidden: "" }));
}

function renderRows() {
  // One row per setting; a setting that varies keeps its inputs when the rows are made again.
  if (!state.settings) return;
  const base = readForm();
  const kept = Object.fromEntries([...$("sb-rows").children].map((tr) => [tr.dataset.key, tr.querySelector("select").value]));
  const typed = Object.fromEntries([...$("sb-rows").children].map((tr) => [tr.dataset.key,
    [...tr.querySelectorAll(".sb-values input")].map((i) => (i.type === "checkbox" ? i.checked : i.value))]));
  const fresh = !$("sb-rows").children.length;
  $("sb-rows").replaceChildren(...settingsOf(base).map(([key, words, value]) => {
    const select = el("select", { "aria-label": `${words}: how it varies` }, ...howOptions(key).map(([v, text]) => el("option", { value: v, text })));
    const want = kept[key] ?? (fresh && key === "learning_rate" ? (sweepKind() === "grid" ? "list" : "range") : "fixed");
    select.value = [...select.options].some((o) => o.value === want) ? want : want === "range" ? "list" : "fixed";
    const tr = el("tr", { "data-key": key, "data-words": words, "data-fixed": shown(value) },
      el("th", { scope: "row", text: words }), el("td", {}, select), el("td", { className: "sb-values" }));
    select.addEventListener("change", () => { renderRow(tr); update(); });
    renderRow(tr);
    if (select.value === kept[key]) { // what was typed stays
      [...tr.querySelectorAll(".sb-values input")].forEach((input, i) => {
        if (i >= (typed[key] || []).length) return;
        if (input.type === "checkbox") input.checked = typed[key][i]; else input.value = typed[key][i];
      });
    }
    return tr;
  }));
  $("sb-base").textContent = baseText(base);
  update();
}

function baseText(base) {
  const images = base.train_samples ? `${base.train_samples.toLocaleString("en-US")} training images` : "all training images";
  const models = base.models.map((m) => `${m.name || "a model"} ${m.kernels.join(",")}, ${OPTIMIZER_NAMES[m.optimizer] || m.optimizer}, learning rate ${m.learning_rate}, batch ${m.batch_size}`);
  const scored = base.models.length > 1 ? `. With ${base.models.length} models a trial is scored by the better of them; to tune one model, vary its own rows ("${base.models[0].name || "Model 1"}: learning rate") and it alone is scored` : "";
  return `${base.epochs} epoch${base.epochs === 1 ? "" : "s"} on ${images}; ${models.join("; ")}${scored}`;
}

// ------------------------------------------------------------------ reading

function listOf(key, text) {
  // The values typed for a setting, or an error in words.
  const kind = kindOf(key);
  const parts = text.split(kind === "list" ? ";" : ",").map((p) => p.trim()).filter(Boolean);
  if (!parts.length) return { error: `type ${kind === "list" ? "kernel lists separated by semicolons" : "values separated by commas"}, e.g. ${EXAMPLES[key.replace(/^models\[\d\]\./, "")]}` };
  const values = [];
  for (const part of parts) {
    let value = part;
    if (kind === "list") {
      value = part.split(",").map((k) => Number(k.trim()));
      if (value.length !== 4 || !value.every((k) => Number.isInteger(k) && k > 0)) return { error: `"${part}" is not 4 whole numbers of kernels, such as 8,16,16,16` };
    } else if (kind === "str") {
      value = part.toLowerCase();
      if (!state.settings.choices.optimizer.includes(value)) return { error: `"${part}" is none of ${state.settings.choices.optimizer.join(", ")}` };
    } else {
      value = Number(part);
      if (!Number.isFinite(value) || (kind === "int" && !Number.isInteger(value))) return { error: `"${part}" is not ${kind === "int" ? "a whole number" : "a number"}` };
    }
    if (values.some((v) => JSON.stringify(v) === JSON.stringify(value))) return { error: `${part} is there twice` };
    values.push(value);
  }
  return { values };
}

function rangeOf(tr) {
  if (!tr.querySelector(".sb-low")) return { error: "type both ends of the range" }; // (its inputs are being made)
  const low = Number(tr.querySelector(".sb-low").value);
  const high = Number(tr.querySelector(".sb-high").value);
  const log = Boolean(tr.querySelector(".sb-logscale")?.checked);
  const int = kindOf(tr.dataset.key) === "int";
  if (tr.querySelector(".sb-low").value === "" || tr.querySelector(".sb-high").value === "" || !Number.isFinite(low) || !Number.isFinite(high)) return { error: "type both ends of the range" };
  if (int && !(Number.isInteger(low) && Number.isInteger(high))) return { error: "both ends must be whole numbers" };
  if (low >= high) return { error: `the lowest (${low}) must be below the highest (${high})` };
  if (log && low <= 0) return { error: "a log scale must start above 0" };
  return { value: { low, high, log } };
}

export function buildBody() {
  // {body, problems: [[row, text]], size}: the POST /sweeps body the form describes.
  const kind = sweepKind();
  const space = {};
  const problems = [];
  for (const tr of $("sb-rows").children) {
    const how = tr.querySelector("select").value;
    if (how === "fixed") continue;
    const read = how === "range" ? rangeOf(tr) : listOf(tr.dataset.key, tr.querySelector(".sb-list")?.value ?? "");
    if (read.error) problems.push([tr, `${tr.dataset.words}: ${read.error}`]);
    else space[tr.dataset.key] = how === "range" ? read.value : read.values;
  }
  const body = { base: readForm(), [kind]: space, prune: $("sb-prune").value };
  const name = $("sb-name").value.trim();
  if (name) body.name = name;
  let size = Object.values(space).reduce((n, v) => n * (Array.isArray(v) ? v.length : 1), 1);
  if (kind === "search") {
    body.trials = Number($("sb-trials").value);
    size = body.trials;
    if (!Number.isInteger(body.trials) || body.trials < 1 || body.trials > state.settings.sweeps.max_trials) problems.push([null, `Trials: a whole number from 1 to ${state.settings.sweeps.max_trials}`]);
  } else if (size > state.settings.sweeps.max_trials) {
    problems.push([null, `${size} combinations: a sweep trains at most ${state.settings.sweeps.max_trials} runs`]);
  }
  if (!Object.keys(space).length && !problems.length) problems.push([null, "Nothing varies yet: pick \"a range\", \"choices\" or \"a list of values\" for at least one setting."]);
  const row = (key) => document.querySelector(`#sb-rows tr[data-key="${CSS.escape(key)}"]`);
  if (body.prune === "successive_halving" && "epochs" in space) problems.push([row("epochs"), "epochs: successive halving judges every trial at the same epochs (its rungs: 1, 3, 9, ...), so epochs cannot vary under it: keep them fixed, or pick the median pruner"]);
  for (const key of Object.keys(space)) {
    const own = /^models\[\d\]\.(\w+)$/.exec(key);
    if (own && own[1] in space) problems.push([row(key), `${row(key).dataset.words}: varies beside "${WORDS[own[1]]}", which already sets every model's: vary one or the other`]);
  }
  return { body, problems, size };
}

function valuesIn({ low, high, log }, integer) {
  // A range as a grid's values: its decades (or 1-3-10 steps) on a log scale, else its ends and middle.
  const round = (v) => (integer ? Math.round(v) : Number(v.toPrecision(2)));
  let values = [low, (low + high) / 2, high];
  if (log) {
    values = [];
    for (let v = low; v <= high * 1.0001; v *= 10) values.push(v);
    if (values.length < 3) values = [low, Math.sqrt(low * high), high];
  }
  return [...new Set(values.map(round))];
}

// ------------------------------------------------------------------ showing and sending

function showProblems(problems) {
  for (const tr of $("sb-rows").children) {
    const message = tr.querySelector(".field-error");
    const mine = problems.find(([row]) => row === tr);
    message.hidden = !mine;
    message.textContent = mine ? mine[1] : "";
    for (const input of tr.querySelectorAll(".sb-values input")) {
      if (mine) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    }
  }
  const general = problems.filter(([row]) => row === null).map(([, text]) => text);
  $("sb-error").hidden = !general.length;
  $("sb-error").textContent = general.join(" ");
}

function update(check = false) {
  // The size line and the body shown; the errors only once Start was pressed (or asked).
  if (!state.settings || !$("sb-rows").children.length) return [[null, "The settings have not come from the server yet: try again in a moment."]];
  const kind = sweepKind();
  $("sb-trials-box").hidden = kind !== "search";
  const { body, problems, size } = buildBody();
  $("sb-body").textContent = JSON.stringify(body, null, 2);
  $("sb-prune-text").textContent = PRUNER_WORDS[body.prune] || "";
  const varied = body[kind].epochs;
  const epochs = !varied ? `${body.base.epochs} epoch${body.base.epochs === 1 ? "" : "s"}`
    : Array.isArray(varied) ? `${Math.min(...varied)} to ${Math.max(...varied)} epochs` : `${varied.low} to ${varied.high} epochs`;
  const tooMany = problems.find(([r, text]) => r === null && /combinations: a sweep trains at most/.test(text));
  $("sb-size").textContent = tooMany ? tooMany[1] : kind === "search" ? `${size} trials of ${epochs} each, at most; the pruner may stop some early.`
    : `${size} combination${size === 1 ? "" : "s"}: ${size} run${size === 1 ? "" : "s"} of ${epochs}.`;
  $("sb-size").classList.toggle("error", Boolean(tooMany));
  $("sb-size").classList.toggle("muted", !tooMany);
  if (check || !$("sb-error").hidden || document.querySelector("#sb-rows .field-error:not([hidden])")) showProblems(check ? problems : problems.filter(([row]) => row === null || row.querySelector(".field-error:not([hidden])")));
  return problems;
}

function showServerProblem(error, field) {
  // "search.learning_rate.low: ..." next to its row, else under the form.
  const key = /^(?:search|grid)\.([^.[]+(?:\[\d\]\.\w+)?)/.exec(field || "");
  const tr = key && document.querySelector(`#sb-rows tr[data-key="${CSS.escape(key[1])}"]`);
  showProblems([[tr || null, tr ? `${tr.dataset.words}: ${error.replace(/^[^:]+: /, "")}` : error]]);
  (tr ? tr.querySelector(".sb-values input") : $("sb-error")).focus?.();
}

async function start() {
  if (built.starting) return;
  const problems = update(true);
  if (problems.length) {
    const first = problems[0][0];
    if (first) first.querySelector(".sb-values input").focus();
    return;
  }
  built.starting = true;
  $("sb-start").disabled = true;
  const result = await send("/sweeps", buildBody().body);
  built.starting = false;
  $("sb-start").disabled = false;
  if (!result.ok) { showServerProblem(result.data.error || `HTTP ${result.status}`, result.data.field); return; }
  showProblems([]);
  rememberForm(readForm()); // the Train form's settings the sweep started from, as a start would keep them
  goToView("sweeps", { sweep: result.data.sweep_id });
}

export function setupSweepBuilder() {
  // Built once the settings have come (GET /config), again when the Sweeps view is shown (the
  // Train form may have changed); typing updates the body shown.
  $("sb-to-train").addEventListener("click", (event) => { event.preventDefault(); goToView("train"); });
  for (const radio of document.querySelectorAll('input[name="sb-kind"]')) radio.addEventListener("change", () => {
    $("sb-prune").value = sweepKind() === "grid" ? "none" : "median";
    for (const tr of $("sb-rows").children) {
      const select = tr.querySelector("select");
      const was = select.value;
      select.replaceChildren(...howOptions(tr.dataset.key).map(([v, text]) => el("option", { value: v, text })));
      select.value = was === "range" ? "list" : was;
      if (select.value !== was) {
        const spread = rangeOf(tr).value;
        renderRow(tr);
        if (spread) tr.querySelector(".sb-list").value = valuesIn(spread, kindOf(tr.dataset.key) === "int").join(", ");
      }
    }
    update();
  });
  $("sweep-new").addEventListener("input", () => update());
  $("sweep-new").addEventListener("change", () => update());
  $("sb-start").addEventListener("click", start);
  $("sb-copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("sb-body").textContent); $("sb-copied").textContent = "copied"; }
    catch (_) { window.getSelection().selectAllChildren($("sb-body")); $("sb-copied").textContent = "selected: press Ctrl+C (⌘C) to copy"; }
  });
  for (const node of document.querySelectorAll(".sb-origin")) node.textContent = window.location.origin;
}

export function refreshSweepBuilder() {
  // The rows for the Train form's settings now (the kinds of setting come from GET /config).
  if (!state.settings || !state.settings.sweeps) return;
  built.kinds = state.settings.sweeps.varied;
  renderRows();
}
