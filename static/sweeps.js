// The sweeps panel: every sweep (GET /sweeps), and one sweep's view (/?sweep=<id>): its trials in a
// table (results first, the best marked), parallel coordinates (an axis per varied setting and
// one for the objective; min/max per axis, typed or dragged on the axis, filter the lines and the
// table), each setting's importance with the method named, and "train the best settings again".

import { $, el, fmt, fmtSeconds, send } from "./common.js";
import { openRun, rerunSettings } from "./runactions.js";
import { state } from "./state.js";
import { currentView, setUrl, urlParam } from "./url.js";
import { goToView } from "./views.js";
import { mayAct } from "./owners.js";
import { colour, focusedTrial, linkLine, markTrial, numberTicks, remark, renderIntermediate, svg, useDescriber } from "./sweepcharts.js";

const NAMES = { learning_rate: "learning rate", batch_size: "batch size", optimizer: "optimizer", epochs: "epochs",
  warmup: "warm-up share", label_smoothing: "label smoothing", kernels: "kernels", seed: "seed", objective: "best val. accuracy %" };
const PLOT = { width: 720, height: 260, top: 24, bottom: 28, side: 56 };
const view = { sweepId: null, sweep: null, listText: "", sweepText: "", filters: {}, sort: { key: "objective", dir: -1 }, scrollOnShow: false };

function settingName(sweep, key) {
  // "learning rate", or "Model 2 learning rate" for one model's own setting.
  const match = /^models\[(\d)\]\.(\w+)$/.exec(key);
  if (!match) return NAMES[key] || key;
  const model = (sweep.spec.base.models || [])[Number(match[1])];
  return `${(model && model.name) || `Model ${Number(match[1]) + 1}`} ${NAMES[match[2]] || match[2]}`;
}

function valueText(key, value) {
  if (value === null || value === undefined) return "–";
  if (key === "kernels") return `[${value.join(",")}]`;
  if (typeof value === "number" && !Number.isInteger(value)) return Number(value.toPrecision(3)).toString();
  return String(value);
}

// ------------------------------------------------------------------ the list

function renderList(sweeps) {
  state.sweepNames = Object.fromEntries(sweeps.map((s) => [s.sweep_id, s.name || s.sweep_id])); // for the run table
  const box = $("sweep-list");
  box.replaceChildren();
  if (!sweeps.length) {
    box.append(el("p", { className: "muted", text: "No sweeps yet: make one with \"New sweep\" below (a search or a grid over any setting), or type several comma-separated learning rates or batch sizes in the Train form." }));
    return;
  }
  const list = el("ul", { className: "sweep-list" });
  for (const s of sweeps) {
    const over = s.varied.map((k) => settingName(s, k)).join(", ");
    const done = `${s.trials_done} of ${s.trials} trials done${s.trials_pruned ? `, ${s.trials_pruned} pruned` : ""}`;
    const best = s.best_objective === null ? "no result yet" : `best ${fmt(s.best_objective, 2, " %")}`;
    const link = el("a", { href: `/?view=sweeps&sweep=${encodeURIComponent(s.sweep_id)}`, text: s.name || `Sweep ${s.sweep_id}` });
    link.addEventListener("click", (event) => { event.preventDefault(); showSweep(s.sweep_id); });
    const facts = el("span", { className: "muted", text: ` · ${s.kind} over ${over} · ${s.state} · ${done} · ${best}` });
    list.append(el("li", s.sweep_id === view.sweepId ? { className: "current" } : {}, link, facts));
  }
  box.append(list);
}

export function showSweep(sweepId, push = true, scroll = true) {
  view.sweepId = sweepId;
  view.sweepText = "";
  view.filters = {};
  if (push) setUrl({ sweep: sweepId });
  $("sweep-view").hidden = !sweepId;
  view.listText = "";
  updateSweeps();
  if (sweepId && scroll) $("sweeps").scrollIntoView({ behavior: "smooth", block: "start" });
}

export async function updateSweeps() {
  // Called after each poll: the list, and the sweep shown (only redrawn when its answer changed).
  const list = await fetch("/sweeps", { cache: "no-cache" });
  if (!list.ok) throw new Error(`HTTP ${list.status}`);
  const text = await list.text();
  if (text !== view.listText) { view.listText = text; renderList(JSON.parse(text).sweeps); }
  if (!view.sweepId) return;
  const one = await fetch(`/sweeps/${encodeURIComponent(view.sweepId)}`, { cache: "no-cache" });
  if (one.status === 404) { $("sweep-error").textContent = `sweep ${view.sweepId} not found`; $("sweep-body").hidden = true; return; }
  if (!one.ok) throw new Error(`HTTP ${one.status}`);
  const body = await one.text();
  if (body === view.sweepText) return;
  view.sweepText = body;
  $("sweep-error").textContent = "";
  $("sweep-body").hidden = false;
  renderSweep(JSON.parse(body));
  if (view.scrollOnShow) {
    view.scrollOnShow = false;
    $("sweeps").scrollIntoView({ block: "start" });
  }
}

// ------------------------------------------------------------------ one sweep

function axesOf(sweep) {
  // An axis per varied setting (log where the search range is), then the objective.
  const space = sweep.spec[sweep.kind];
  const axes = sweep.varied.map((key) => {
    const values = sweep.runs.map((r) => r.values[key]).filter((v) => v !== undefined);
    const range = space[key] && !Array.isArray(space[key]) ? space[key] : null;
    const numeric = key !== "kernels" && key !== "optimizer" && values.every((v) => typeof v === "number");
    if (!numeric) {
      const choices = [...new Set((Array.isArray(space[key]) ? space[key] : values).map((v) => valueText(key, v)))];
      return { key, kind: "choice", choices };
    }
    const lo = range ? range.low : Math.min(...values);
    const hi = range ? range.high : Math.max(...values);
    return { key, kind: "number", log: Boolean(range && range.log) || (!range && lo > 0 && hi / lo >= 50), lo, hi };
  });
  const scores = sweep.runs.map((r) => r.objective).filter((v) => v !== null);
  axes.push({ key: "objective", kind: "number", log: false, lo: Math.min(0, ...scores), hi: 100 });
  return axes;
}

function position(axis, value) {
  // 0 (bottom) to 1 (top) on the axis; null for no value.
  if (value === null || value === undefined) return null;
  if (axis.kind === "choice") {
    const i = axis.choices.indexOf(valueText(axis.key, value));
    return axis.choices.length === 1 ? 0.5 : i / (axis.choices.length - 1);
  }
  const f = (v) => (axis.log ? Math.log10(v) : v);
  return axis.hi === axis.lo ? 0.5 : (f(value) - f(axis.lo)) / (f(axis.hi) - f(axis.lo));
}

function valueAt(axis, p) {
  // The inverse of position for a number axis.
  const f = (v) => (axis.log ? Math.log10(v) : v);
  const x = f(axis.lo) + p * (f(axis.hi) - f(axis.lo));
  return axis.log ? 10 ** x : x;
}

function runValue(run, key) {
  return key === "objective" ? run.objective : run.values[key];
}

function passes(run, axes) {
  return axes.every((axis) => {
    const filter = view.filters[axis.key];
    if (!filter) return true;
    const value = runValue(run, axis.key);
    if (axis.kind === "choice") return !filter.choice || valueText(axis.key, value) === filter.choice;
    if (value === null || value === undefined) return filter.min === null && filter.max === null;
    return (filter.min === null || value >= filter.min) && (filter.max === null || value <= filter.max);
  });
}

function renderSweep(sweep) {
  view.sweep = sweep;
  const best = sweep.runs.find((r) => r.run_id && r.run_id === sweep.best_run_id);
  const ended = sweep.state === "running" ? "" : ` · ended ${sweep.ended_at ? new Date(sweep.ended_at * 1000).toLocaleString() : ""}`;
  $("sweep-title").textContent = `Sweep ${sweep.name || sweep.sweep_id}: ${sweep.kind} of ${sweep.trials} trials over ${sweep.varied.map((k) => settingName(sweep, k)).join(", ")}`
    + (sweep.prune === "median" ? ", hopeless runs pruned (median)" : sweep.prune === "successive_halving" ? ", pruned by successive halving" : "");
  $("sweep-pruner").textContent = sweep.pruner.text;
  const made = sweep.runs.filter((r) => r.state !== "waiting").length;
  $("sweep-state").textContent = `${sweep.state}${ended} · ${made} of ${sweep.trials} trials made · objective: ${sweep.objective}`
    + (best ? ` · best ${fmt(best.objective, 2, " %")} (trial ${best.trial + 1})` : "") + (sweep.error ? ` · ${sweep.error}` : "");
  $("sweep-stop").hidden = sweep.state !== "running" || !mayAct(sweep.owner);
  $("sweep-more-box").hidden = sweep.kind !== "search" || !mayAct(sweep.owner);
  $("sweep-more").max = String(Math.max(1, 64 - sweep.trials));
  $("sweep-add").disabled = sweep.trials >= 64;
  const top = Math.max(-1, ...sweep.runs.map((r) => r.objective ?? -1));
  $("sweep-note").textContent = sweep.runs.some((r) => r.objective !== null) && top < 20
    ? `No run has learned yet: the best validation accuracy is ${fmt(top, 2, " %")}, and guessing scores 10 %. Try more epochs or training images before reading which setting won.` : "";
  $("sweep-compare").disabled = sweep.runs.filter((r) => r.run_id && !["deleted", "cancelled", "queued", "waiting"].includes(r.state)).length < 2;
  $("sweep-best").disabled = !best;
  const axes = axesOf(sweep);
  renderFilters(axes);
  renderImportance(sweep);
  $("sweep-caution").textContent = caution(sweep);
  if (sweep.state !== "running") $("sweep-added").textContent = "";
  useDescriber((trial) => describe(sweep, trial));
  renderParcoords(sweep, axes);
  renderIntermediate(sweep);
  renderScatter(sweep, axes);
  renderTable(sweep);
  remark();
}

function describe(sweep, trial) {
  // "trial 3 (pruned): learning rate 0.003, batch size 64 → best 78.2 %; pruned at epoch 1: ..."
  const run = sweep.runs.find((r) => r.trial === trial);
  if (!run) return "";
  const values = sweep.varied.map((k) => `${settingName(sweep, k)} ${valueText(k, run.values[k])}`).join(", ");
  const why = whyText(run);
  return `Trial ${trial + 1} (${run.state}): ${values} → best ${fmt(run.objective, 2, " %")}${why ? `; ${why}` : ""}`;
}

function caution(sweep) {
  // How far to trust the best trial: how many ran to the end, an early look that proved wrong, one seed.
  const ended = sweep.runs.filter((r) => r.state === "finished");
  const pruned = sweep.runs.filter((r) => r.state === "pruned");
  if (!ended.length) return "";
  const said = [];
  if (pruned.length && ended.length <= 3) {
    said.push(`Only ${ended.length} trial${ended.length === 1 ? "" : "s"} ran all ${ended.length === 1 ? "its" : "their"} epochs: the best is the best of ${ended.length === 1 ? "that one" : "those"}; ${pruned.length} ${pruned.length === 1 ? "was" : "were"} stopped early by the pruner. Add trials, or search again with the pruner "none", to compare more of them at their end.`);
  }
  // A trial that finished above the line at its last epoch though it was below it at an earlier one.
  const line = new Map(sweep.pruner.line.map(([e, v]) => [e, v]));
  const last = (r) => r.intermediate[r.intermediate.length - 1];
  const late = ended.find((r) => line.has(last(r)[0]) && last(r)[1] >= line.get(last(r)[0])
    && r.intermediate.some(([e, v]) => e < last(r)[0] && line.has(e) && v < line.get(e)));
  if (late && sweep.prune !== "none") {
    const [e, v] = late.intermediate.find(([x, y]) => x < last(late)[0] && line.has(x) && y < line.get(x));
    said.push(`An early look can be wrong: trial ${late.trial + 1} was at ${fmt(v, 1, " %")} after epoch ${e}, below the ${sweep.pruner.line_name} there (${fmt(line.get(e), 1, " %")}), and ended at ${fmt(late.objective, 1, " %")}.`);
  }
  if (!sweep.varied.includes("seed")) {
    said.push(`Every trial used seed ${sweep.spec.base.seed ?? 0}, and the sampler follows that seed: the same search again trains the same trials. To see how much a result moves by chance, vary the seed too (choices 0, 1, 2).`);
  }
  return said.join(" ");
}

function whyText(run) {
  // Why the trial ended where it did (or why the pruner let it go on), or why it failed.
  return run.pruned_because || run.error || run.verdict || "";
}

function renderFilters(axes) {
  // Min and max per number axis, a choice per choice axis: the same filters a drag on an axis sets.
  const key = JSON.stringify(axes.map((a) => [a.key, a.kind, a.choices || null]));
  const box = $("sweep-filters");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren();
  for (const axis of axes) {
    const name = settingName(view.sweep, axis.key);
    const group = el("fieldset", { className: "axis-filter" }, el("legend", { text: name }));
    if (axis.kind === "choice") {
      const select = el("select", { "aria-label": `${name}: show only`, "data-axis": axis.key });
      select.append(el("option", { value: "", text: "all" }), ...axis.choices.map((c) => el("option", { value: c, text: c })));
      select.addEventListener("change", () => { view.filters[axis.key] = { choice: select.value || null }; redrawFiltered(); });
      group.append(select);
    } else {
      for (const end of ["min", "max"]) {
        const input = el("input", { type: "number", step: "any", "aria-label": `${name} ${end}`, "data-axis": axis.key, "data-end": end, size: "7" });
        input.addEventListener("input", () => setFilter(axis.key, end, input.value === "" ? null : Number(input.value)));
        group.append(el("label", { text: `${end} ` }, input));
      }
    }
    box.append(group);
  }
}

function setFilter(key, end, value) {
  const filter = view.filters[key] || { min: null, max: null };
  filter[end] = Number.isFinite(value) ? value : null;
  view.filters[key] = filter;
  redrawFiltered();
}

function redrawFiltered() {
  if (!view.sweep) return;
  const axes = axesOf(view.sweep);
  for (const axis of axes) { // the inputs say what the filters are (also after a drag)
    const filter = view.filters[axis.key];
    for (const input of document.querySelectorAll(`#sweep-filters input[data-axis="${axis.key}"]`)) {
      const value = filter ? filter[input.dataset.end] : null;
      if (document.activeElement !== input) input.value = value === null || value === undefined ? "" : String(Number(value.toPrecision(4)));
    }
  }
  let shown = 0;
  for (const run of view.sweep.runs) {
    const ok = passes(run, axes);
    shown += ok;
    const line = document.querySelector(`#sweep-parcoords path[data-trial="${run.trial}"]`);
    if (line) line.classList.toggle("filtered", !ok);
    const row = document.querySelector(`#sweep-rows tr[data-trial="${run.trial}"]`);
    if (row) row.hidden = !ok;
    for (const dot of document.querySelectorAll(`#sweep-scatter circle[data-trial="${run.trial}"]`)) dot.classList.toggle("filtered", !ok);
  }
  const crossed = axes.filter((a) => view.filters[a.key] && view.filters[a.key].min !== null && view.filters[a.key].max !== null
    && view.filters[a.key].min > view.filters[a.key].max).map((a) => settingName(view.sweep, a.key));
  $("sweep-shown").textContent = `${shown} of ${view.sweep.runs.length} trials shown`
    + (crossed.length ? ` (the min of ${crossed.join(", ")} is above its max: nothing can be shown)` : "");
}

function renderImportance(sweep) {
  const box = $("sweep-importance");
  box.replaceChildren(el("h3", { text: "Which setting mattered" }));
  const entries = Object.entries(sweep.importance).sort((a, b) => b[1] - a[1]);
  if (!entries.length) {
    box.append(el("p", { className: "muted", text: "Not known yet: it needs at least three trials with a result." }));
    return;
  }
  if (sweep.varied.length === 1) {
    box.append(el("p", { text: `Only ${settingName(sweep, sweep.varied[0])} was varied: every difference between the runs comes from it. Vary two or more settings to see which matters more.` }));
    return;
  }
  const list = el("dl", { className: "importance" });
  for (const [key, share] of entries) {
    const bar = el("span", { className: "bar" });
    bar.style.width = `${Math.round(share * 100)}%`;
    list.append(el("dt", { text: settingName(sweep, key) }), el("dd", {}, bar, el("span", { text: `${Math.round(share * 100)} %` })));
  }
  box.append(list, el("p", { className: "muted", text: `Share of the objective's variation each setting explains, by ${sweep.importance_method}, over every trial with a result (pruned ones at the epoch they reached).` }));
}

function renderParcoords(sweep, axes) {
  const { width, height, top, bottom, side } = PLOT;
  const plot = svg("svg", { class: "parcoords", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Parallel coordinates: one line per trial across ${axes.map((a) => settingName(sweep, a.key)).join(", ")}; colour by best validation accuracy` });
  const x = (i) => side + (i * (width - 2 * side)) / Math.max(1, axes.length - 1);
  const y = (p) => top + (1 - p) * (height - top - bottom);
  const runs = sweep.runs.filter((r) => r.run_id) // a line per run (a grid's waiting combinations have none yet)
    .sort((a, b) => (a.objective ?? -1) - (b.objective ?? -1)); // best drawn last
  for (const run of runs) {
    const points = axes.map((axis, i) => { const p = position(axis, runValue(run, axis.key)); return p === null ? null : [x(i), y(p)]; });
    const d = points.map((pt, i) => (pt ? `${i && points[i - 1] ? "L" : "M"}${pt[0].toFixed(1)},${pt[1].toFixed(1)}` : "")).join("");
    const line = svg("path", { d, "data-run-id": run.run_id || "", "data-trial": String(run.trial), stroke: colour(run.objective),
      "stroke-width": run.run_id === sweep.best_run_id ? "3.5" : "1.8", fill: "none" });
    if (run.state === "pruned" || run.state === "failed") line.setAttribute("stroke-dasharray", "5 3");
    line.append(svg("title", {}, `trial ${run.trial + 1} (${run.state})`));
    linkLine(line, run.trial);
    plot.append(line);
  }
  axes.forEach((axis, i) => {
    const g = svg("g", { class: "axis" });
    g.append(svg("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1), stroke: "#57606a" }));
    const label = svg("text", { x: x(i), y: top - 8, "text-anchor": "middle", class: "axis-name" });
    label.textContent = settingName(sweep, axis.key);
    g.append(label);
    const right = i === axes.length - 1 && i > 0; // the last axis is labelled outside, where no line crosses
    for (const [text, p] of axisTicks(axis)) {
      g.append(svg("line", { x1: x(i) + (right ? 3 : -3), x2: x(i), y1: y(p), y2: y(p), stroke: "#57606a" }),
        svg("text", { x: x(i) + (right ? 5 : -5), y: y(p) + 4, "text-anchor": right ? "start" : "end", class: "tick" }, text));
    }
    if (axis.kind === "number") g.append(brush(axis, x(i), y));
    plot.append(g);
  });
  $("sweep-parcoords").replaceChildren(plot);
  redrawFiltered();
}

function axisTicks(axis) {
  // [label, position 0..1] along an axis: every choice, or round values between its ends.
  if (axis.kind === "choice") return axis.choices.map((c, j) => [c, axis.choices.length === 1 ? 0.5 : j / (axis.choices.length - 1)]);
  const integer = ["batch_size", "epochs", "seed"].includes(axis.key.replace(/^models\[\d\]\./, ""));
  const values = numberTicks(axis.lo, axis.hi, axis.log, integer);
  return values.map((v) => [axis.key === "objective" ? `${v}` : valueText(axis.key, v), position(axis, v)]);
}

function brush(axis, x, y) {
  // Drag up or down along a number axis: the lines outside the dragged span are filtered out.
  const zone = svg("rect", { x: x - 10, y: y(1), width: 20, height: y(0) - y(1), class: "brush-zone" });
  const span = svg("rect", { x: x - 6, width: 12, class: "brush", visibility: "hidden" });
  const group = svg("g", {});
  group.append(zone, span);
  let start = null;
  const at = (event) => {
    const box = zone.ownerSVGElement.getBoundingClientRect();
    const scale = PLOT.height / box.height;
    const py = (event.clientY - box.top) * scale;
    return Math.max(0, Math.min(1, (y(0) - py) / (y(0) - y(1))));
  };
  zone.addEventListener("pointerdown", (event) => { start = at(event); zone.setPointerCapture(event.pointerId); });
  zone.addEventListener("pointermove", (event) => {
    if (start === null) return;
    const [a, b] = [start, at(event)].sort((p, q) => p - q);
    span.setAttribute("y", y(b)); span.setAttribute("height", Math.max(1, y(a) - y(b))); span.setAttribute("visibility", "visible");
  });
  zone.addEventListener("pointerup", (event) => {
    if (start === null) return;
    const [a, b] = [start, at(event)].sort((p, q) => p - q);
    start = null;
    if (b - a < 0.01) { view.filters[axis.key] = { min: null, max: null }; span.setAttribute("visibility", "hidden"); } // a click clears
    else view.filters[axis.key] = { min: valueAt(axis, a), max: valueAt(axis, b) };
    redrawFiltered();
  });
  return group;
}

const RESULT_COLUMNS = [ // results first: [key, header, value of a trial]
  ["trial", "Trial", (r) => r.trial],
  ["state", "State", (r) => r.state],
  ["objective", "Best val. %", (r) => r.objective],
  ["final_val", "Final val. %", (r) => r.final_val_accuracy],
  ["best_test", "Best test %", (r) => r.best_test_accuracy],
  ["final_test", "Final test %", (r) => r.final_test_accuracy],
  ["duration", "Duration", (r) => r.duration_seconds],
];

function tableColumns(sweep) {
  return [...RESULT_COLUMNS, ...sweep.varied.map((k) => [`v:${k}`, settingName(sweep, k), (r) => r.values[k]])];
}

function renderTable(sweep) {
  // Sortable by any column (a header button; again for the other direction); the best run marked.
  const columns = tableColumns(sweep);
  const sort = columns.find(([key]) => key === view.sort.key) || columns[2];
  $("sweep-head").replaceChildren(el("tr", {}, ...columns.map(([key, header]) => {
    const button = el("button", { type: "button", className: "sort", text: header });
    button.addEventListener("click", () => {
      view.sort = { key, dir: view.sort.key === key ? -view.sort.dir : key === "trial" ? 1 : -1 };
      renderTable(view.sweep);
    });
    return el("th", { scope: "col", "aria-sort": key === sort[0] ? (view.sort.dir < 0 ? "descending" : "ascending") : "none" }, button);
  }), el("th", { scope: "col", text: "Run" })));
  const order = (a, b) => {
    const x = sort[2](a);
    const y = sort[2](b);
    if (x === y) return a.trial - b.trial;
    if (x === null || x === undefined) return 1; // no value: last, either way
    if (y === null || y === undefined) return -1;
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(valueText("", x)).localeCompare(String(valueText("", y)));
    return c * view.sort.dir;
  };
  $("sweep-rows").replaceChildren(...[...sweep.runs].sort(order).map((run) => {
    const isBest = run.run_id && run.run_id === sweep.best_run_id;
    const open = run.run_id && !["deleted", "cancelled"].includes(run.state)
      ? el("button", { type: "button", text: "open", tabindex: "-1", "aria-label": `open run ${run.run_id} (trial ${run.trial + 1})` }) : el("span", { className: "muted", text: run.run_id ? "gone" : "–" });
    if (open.tagName === "BUTTON") open.addEventListener("click", () => openRun(run.run_id));
    const why = whyText(run);
    const row = el("tr", { "data-trial": String(run.trial), "data-run-id": run.run_id || "", tabindex: "0", ...(isBest ? { className: "best" } : {}) },
      el("td", {}, `${run.trial + 1}${isBest ? " ★ best" : ""}`,
        el("span", { className: "values-inline", text: sweep.varied.map((k) => `${settingName(sweep, k)} ${valueText(k, run.values[k])}`).join(", ") })),
      el("td", { className: "why-cell" }, el("span", { className: `state ${run.state}`, text: run.state }), ...(why ? [el("span", { className: "why", text: why })] : [])),
      el("td", { text: `${fmt(run.objective, 2)}${run.state === "pruned" ? ` (epoch ${run.epochs_reported})` : ""}` }),
      el("td", { text: fmt(run.final_val_accuracy, 2) }), el("td", { text: fmt(run.best_test_accuracy, 2) }),
      el("td", { text: fmt(run.final_test_accuracy, 2) }), el("td", { text: fmtSeconds(run.duration_seconds) }),
      ...sweep.varied.map((k) => el("td", { text: valueText(k, run.values[k]) })),
      el("td", {}, open));
    linkRow(row, run, open);
    return row;
  }));
  redrawFiltered();
}

function linkRow(row, run, open) {
  // One tab stop a row: focus (or hover) marks the trial's lines; Enter opens its run.
  row.addEventListener("focus", () => markTrial(run.trial));
  row.addEventListener("blur", () => setTimeout(() => markTrial(focusedTrial()), 0)); // the next row's focus comes after
  row.addEventListener("pointerenter", () => markTrial(run.trial));
  row.addEventListener("pointerleave", (event) => { if (event.pointerType !== "touch") markTrial(focusedTrial()); });
  row.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === row && open.tagName === "BUTTON") open.click();
  });
}

function renderScatter(sweep, axes) {
  // The objective against each varied setting: a small plot each (log axes where the range is).
  const box = $("sweep-scatter");
  const objective = axes[axes.length - 1];
  const W = 220, H = 150, L = 34, B = 34, T = 8, R = 10;
  const x = (p) => L + p * (W - L - R);
  const y = (p) => T + (1 - p) * (H - T - B);
  box.replaceChildren(...axes.slice(0, -1).map((axis) => {
    const name = settingName(sweep, axis.key);
    const plot = svg("svg", { class: "scatter", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `best validation accuracy against ${name}${axis.log ? " (log scale)" : ""}` });
    plot.append(svg("line", { x1: x(0), x2: x(1), y1: y(0), y2: y(0), stroke: "#57606a" }),
      svg("line", { x1: x(0), x2: x(0), y1: y(0), y2: y(1), stroke: "#57606a" }));
    const label = svg("text", { x: (x(0) + x(1)) / 2, y: H - 4, "text-anchor": "middle", class: "axis-name" });
    label.textContent = `${name}${axis.log ? " (log)" : ""}`;
    const ticks = axis.kind === "choice" ? axis.choices.map((c, j) => [c, axis.choices.length === 1 ? 0.5 : j / (axis.choices.length - 1)])
      : [[valueText(axis.key, axis.lo), 0], [valueText(axis.key, axis.hi), 1]];
    for (const [text, p] of ticks) {
      const tick = svg("text", { x: x(p), y: y(0) + 12, "text-anchor": p === 0 ? "start" : p === 1 ? "end" : "middle", class: "tick" });
      tick.textContent = text;
      plot.append(tick);
    }
    for (const [text, p] of [["0", 0], ["100", 1]]) {
      const tick = svg("text", { x: x(0) - 3, y: y(p) + 4, "text-anchor": "end", class: "tick" });
      tick.textContent = text;
      plot.append(tick);
    }
    plot.append(label);
    for (const run of sweep.runs) {
      const px = position(axis, run.values[axis.key]);
      const py = position(objective, run.objective);
      if (px === null || py === null) continue;
      const dot = svg("circle", { cx: x(px).toFixed(1), cy: y(py).toFixed(1), r: run.run_id === sweep.best_run_id ? 5 : 3.5,
        fill: colour(run.objective), "data-run-id": run.run_id || "", "data-trial": String(run.trial) });
      dot.append(svg("title", {}, `trial ${run.trial + 1}: ${name} ${valueText(axis.key, run.values[axis.key])} → ${fmt(run.objective, 2, " %")} (${run.state})`));
      linkLine(dot, run.trial);
      plot.append(dot);
    }
    return el("figure", { className: "scatter-box" }, plot);
  }));
}

// ------------------------------------------------------------------ set-up

async function addTrials() {
  const more = Number($("sweep-more").value);
  if (!Number.isInteger(more) || more < 1) { $("sweep-error").textContent = "More trials: type a whole number, 1 or more."; $("sweep-more").focus(); return; }
  $("sweep-add").disabled = true;
  const result = await send(`/sweeps/${encodeURIComponent(view.sweepId)}/trials`, { trials: more });
  $("sweep-add").disabled = false;
  $("sweep-error").textContent = result.ok ? "" : result.data.error || `HTTP ${result.status}`;
  $("sweep-added").textContent = result.ok ? `${more} more trial${more === 1 ? "" : "s"} asked for: ${result.data.trials} in all.` : "";
  view.sweepText = "";
  view.listText = "";
  updateSweeps();
}


function sweepFromUrl() {
  return urlParam("sweep");
}

export function applySweepFromUrl() {
  if (currentView() !== "sweeps") return; // another view: the sweep shown stays for when it comes back
  if (sweepFromUrl() !== view.sweepId) showSweep(sweepFromUrl(), false, false);
}

export function setupSweeps() {
  $("sweep-close").addEventListener("click", () => showSweep(null));
  $("sweep-stop").addEventListener("click", async () => {
    if (!window.confirm("Stop this sweep? Its queued trials are cancelled and the training one stops; the results so far stay.")) return;
    const result = await send(`/sweeps/${encodeURIComponent(view.sweepId)}/stop`, {});
    $("sweep-error").textContent = result.ok ? "" : result.data.error || `HTTP ${result.status}`;
    view.sweepText = "";
    updateSweeps();
  });
  $("sweep-add").addEventListener("click", addTrials);
  $("sweep-compare").addEventListener("click", () => {
    // The sweep's runs' curves overlaid, each named by its values, in sweep order.
    const ids = view.sweep.runs.filter((r) => r.run_id && !["deleted", "cancelled", "queued", "waiting"].includes(r.state)).map((r) => r.run_id);
    goToView("runs", { runs: ids.join(",") });
  });
  $("sweep-best").addEventListener("click", () => {
    if (view.sweep && view.sweep.best_run_id) rerunSettings(view.sweep.best_run_id);
  });
  $("sweep-clear").addEventListener("click", () => { view.filters = {}; for (const s of document.querySelectorAll("#sweep-filters select")) s.value = ""; redrawFiltered(); });
  view.sweepId = sweepFromUrl();
  view.scrollOnShow = Boolean(view.sweepId); // an address that names a sweep: shown where the user looks
  $("sweep-view").hidden = !view.sweepId;
}

