// What the sweep view's charts share: SVG making, axis ticks, each trial's colour, and the link
// between a trial's row, its parallel-coordinates line and its line over epochs (hover or focus
// one: all of them are marked and the readout names the trial). Also the trials-over-epochs chart:
// every trial's validation accuracy per epoch, the line the pruner cut against, pruned trials
// ending with a cross where they were cut.

import { $, fmt } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const PLOT = { width: 720, height: 290, top: 16, bottom: 64, left: 52, right: 24 };

export function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

export function colour(objective) {
  // Low objective: orange-red; high: blue (drawn last, on top).
  if (objective === null || objective === undefined) return "#8c959f";
  const t = Math.max(0, Math.min(1, objective / 100));
  const mix = (a, b) => Math.round(a + (b - a) * t);
  return `rgb(${mix(213, 9)}, ${mix(94, 105)}, ${mix(0, 218)})`;
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
}

export function numberTicks(lo, hi, log, integer = false, count = 4) {
  // Values between lo and hi to label an axis: decades (and 2, 5 between when few) on a log axis,
  // round steps on a linear one; integers only for an integer setting.
  if (!(hi > lo)) return [lo];
  if (log && lo > 0) {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of [1, 2, 5]) out.push({ v: m * 10 ** e, m });
    }
    const inside = out.filter(({ v }) => v >= lo * 0.999 && v <= hi * 1.001);
    const decades = inside.filter(({ m }) => m === 1);
    const picked = decades.length >= 3 ? decades : inside;
    return picked.map(({ v }) => Number(v.toPrecision(3))).filter((v) => !integer || Number.isInteger(v));
  }
  const step = Math.max(integer ? 1 : 0, niceStep(hi - lo, count));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(10)));
  return out;
}

// ------------------------------------------------------------------ one trial, everywhere

const marked = { trial: null, describe: () => "" };

export function useDescriber(describe) {
  // How a trial is named in the readout (the sweep view knows its settings' names).
  marked.describe = describe;
}

export function markTrial(trial) {
  // Mark a trial's row and lines (null: none); the readouts name it.
  marked.trial = trial;
  for (const box of ["sweep-parcoords", "sweep-intermediate", "sweep-rows", "sweep-scatter"]) {
    const root = $(box);
    if (!root) continue;
    root.classList.toggle("has-hot", trial !== null);
    for (const node of root.querySelectorAll(".hot")) node.classList.remove("hot");
    if (trial !== null) for (const node of root.querySelectorAll(`[data-trial="${trial}"]`)) node.classList.add("hot");
  }
  $("sweep-readout").textContent = trial === null ? "Point at (or tap) a line or a row, or move through the rows with Tab, to see one trial in every chart."
    : marked.describe(trial);
  $("intermediate-readout").textContent = trial === null ? "" : marked.describe(trial);
}

export function linkLine(node, trial) {
  // A line or dot that marks its trial while the pointer is on it; a click goes to its row.
  node.addEventListener("pointerenter", () => markTrial(trial));
  node.addEventListener("pointerleave", (event) => { if (event.pointerType !== "touch") markTrial(focusedTrial()); });
  node.addEventListener("click", () => {
    const row = document.querySelector(`#sweep-rows tr[data-trial="${trial}"]`);
    if (row && !row.hidden) { row.focus({ preventScroll: true }); row.scrollIntoView({ block: "nearest" }); }
    markTrial(trial);
  });
}

export function focusedTrial() {
  // The trial of the focused row (the keyboard's choice stays marked when the pointer leaves), else null.
  const row = document.activeElement && document.activeElement.closest && document.activeElement.closest("#sweep-rows tr");
  return row ? Number(row.dataset.trial) : null;
}

export function remark() {
  // After a redraw: the marked trial stays marked.
  if (marked.trial !== null) markTrial(marked.trial);
}

// ------------------------------------------------------------------ trials over epochs

function epochsOf(sweep) {
  const reported = sweep.runs.flatMap((r) => r.intermediate.map(([e]) => e));
  const planned = Number(sweep.spec.base.epochs) || 1;
  return Math.max(planned, ...reported, 1);
}

function lowestShown(sweep) {
  const values = sweep.runs.flatMap((r) => r.intermediate.map(([, v]) => v)).concat(sweep.pruner.line.map(([, v]) => v));
  return values.length ? Math.max(0, Math.floor((Math.min(...values) - 3) / 10) * 10) : 0; // a cross on the lowest stays clear of the axis
}

export function renderIntermediate(sweep) {
  const { width, height, top, bottom, left, right } = PLOT;
  const epochs = epochsOf(sweep);
  const floor = Math.min(lowestShown(sweep), 90);
  const x = (e) => left + (epochs === 1 ? 0.5 : (e - 1) / (epochs - 1)) * (width - left - right);
  const y = (v) => top + (1 - (v - floor) / (100 - floor)) * (height - top - bottom);
  const drawn = sweep.runs.filter((r) => r.intermediate.length);
  const plot = svg("svg", { class: "intermediate", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Validation accuracy per epoch of ${drawn.length} trial${drawn.length === 1 ? "" : "s"}, with the ${sweep.pruner.line_name}; pruned trials end with a cross` });
  plot.append(svg("line", { x1: left, x2: width - right, y1: y(floor), y2: y(floor), class: "frame" }),
    svg("line", { x1: left, x2: left, y1: y(floor), y2: y(100), class: "frame" }));
  for (const v of numberTicks(floor, 100, false, false, 5)) {
    plot.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, `${v} %`));
  }
  for (const e of numberTicks(1, Math.max(epochs, 1), false, true, 8).filter((e) => e >= 1)) {
    plot.append(svg("text", { x: x(e), y: height - bottom + 16, "text-anchor": "middle", class: "tick" }, String(e)));
  }
  plot.append(svg("text", { x: (left + width - right) / 2, y: height - bottom + 32, "text-anchor": "middle", class: "axis-name" }, "epoch"));
  for (const run of [...drawn].sort((a, b) => (a.objective ?? -1) - (b.objective ?? -1))) {
    const points = run.intermediate.map(([e, v]) => `${x(e).toFixed(1)},${y(Math.max(floor, v)).toFixed(1)}`);
    const line = svg("path", { d: `M${points.join("L")}`, class: `trial-line ${run.state}`, "data-trial": String(run.trial),
      stroke: colour(run.objective), "stroke-width": run.run_id === sweep.best_run_id ? "3.5" : "2", fill: "none" });
    line.append(svg("title", {}, `trial ${run.trial + 1} (${run.state})`));
    linkLine(line, run.trial);
    plot.append(line);
    const [e, v] = run.intermediate[run.intermediate.length - 1];
    const cx = x(e), cy = y(Math.max(floor, v));
    const end = run.state === "pruned"
      ? svg("path", { d: `M${cx - 5},${cy - 5}L${cx + 5},${cy + 5}M${cx - 5},${cy + 5}L${cx + 5},${cy - 5}`, class: "cut", "data-trial": String(run.trial), stroke: colour(run.objective) })
      : svg("circle", { cx, cy, r: 3, class: "end", "data-trial": String(run.trial), fill: colour(run.objective) });
    linkLine(end, run.trial);
    plot.append(end);
  }
  renderPrunerLine(plot, sweep, x, y, floor);
  $("sweep-intermediate").replaceChildren(plot);
}

function renderPrunerLine(plot, sweep, x, y, floor) {
  // The line the trials are cut against, and a legend under the chart naming it and the crosses.
  const { height, left } = PLOT;
  const line = sweep.pruner.line;
  const legend = svg("g", { class: "legend" });
  if (line.length) {
    const d = line.map(([e, v], i) => `${i ? "L" : "M"}${x(e).toFixed(1)},${y(Math.max(floor, v)).toFixed(1)}`).join("");
    plot.append(svg("path", { d, class: "pruner-line", fill: "none" }));
    for (const [e, v] of line) plot.append(svg("circle", { cx: x(e), cy: y(Math.max(floor, v)), r: 3.5, class: "pruner-point" }));
  }
  legend.append(svg("path", { d: `M${left},${height - 10}h28`, class: "pruner-line" }),
    svg("text", { x: left + 34, y: height - 6, class: "pruner-name" }, line.length ? sweep.pruner.line_name : `${sweep.pruner.line_name}: none yet`),
    svg("path", { d: `M${left + 330},${height - 15}l10,10m-10,0l10,-10`, class: "cut", stroke: "#57606a" }),
    svg("text", { x: left + 346, y: height - 6, class: "pruner-name" }, "pruned there"));
  plot.append(legend);
}
