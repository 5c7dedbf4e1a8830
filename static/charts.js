// Live, interactive curves, drawn in the browser with uPlot (the vendored script that the page
// loads before its modules defines the global ``uPlot``): one chart per measure, all sharing the
// cursor and the zoom, and the per-layer charts of "Inside the network".

import { $, el } from "./common.js";
import { pollNow } from "./poll.js";
import { state } from "./state.js";
import { alignTables, buildLayerTables, buildTables, fetchCurveRows, fetchLayerRows, layerRun, LOG_FLOOR, sharedXRange, X_AXES } from "./chartdata.js";
import { heatStripBox, renderHeatStrip } from "./heatstrip.js";

const curves = state.curves; // the curves' part of the page state
const CHART_HEIGHT = 200; // px of plot; the legend below it grows with the lines (see reserveLegends)
const LEGEND_LINE = 19; // px of one line of a legend (12 px text)
const LEGEND_ENTRY = 200; // px an entry takes on its line, about ("Model 1 validation: 98.12 (raw 98.05)")
// A training loss above this is worse than guessing (ln 10 = 2.30 for 10 digits): the linear loss
// axis stops here, so one run that diverges (to 100 and more) does not flatten every other line.
const LOSS_AXIS_MAX = 2.5;
const CHART_SYNC_KEY = "curves"; // one cursor across all charts
// How a value reads in a legend (a chart spec's "format") or on an axis ("tick"), by name.
const FORMATS = {
  fixed2: (v) => v.toFixed(2),
  fixed1: (v) => v.toFixed(1),
  short1: (v) => (Math.abs(v) >= 99.95 ? v.toFixed(0) : v.toFixed(1)), // at most 4 characters for 0-100
  round1: (v) => String(Number(v.toFixed(1))),
  precision4: (v) => v.toPrecision(4),
  precision3: (v) => v.toPrecision(3),
  round2p: (v) => String(Number(v.toPrecision(2))),
  exponential2: (v) => v.toExponential(2),
  exponential1: (v) => (v === 0 ? "0" : v.toExponential(1)),
  exponential0: (v) => v.toExponential(0),
  integer: (v) => Math.round(v).toLocaleString("en-US"),
};
// What each chart of a form draws with: uPlot lines, or a page module of its own.
const RENDERERS = { lines: renderChart, layer_lines: renderChart, heat_strip: renderHeatStrip };

export function chartSpecs(panel) {
  // The charts of the metric kinds (GET /config) that go in ``panel``, with their formats resolved.
  return state.settings.metric_kinds.filter((k) => k.panel === panel).flatMap((k) => k.charts).map((chart) => ({
    ...chart, digits: FORMATS[chart.format], tick: FORMATS[chart.tick || chart.format],
  }));
}

function allSpecs() {
  return [...new Set(state.settings.metric_kinds.map((k) => k.panel))].flatMap(chartSpecs);
}

// ------------------------------------------------------------------ chart options

function percentRange(u, min, max) {
  if (curves.fullRange || min === null || max === null) return [0, 100];
  const low = Math.max(0, Math.floor(min - 0.5));
  const high = Math.min(100, Math.ceil(max + 0.5));
  return [low, Math.max(high, low + 1)];
}

function yLabels(spec) {
  // The y axis's labels (drawn on the canvas), also kept in the chart's data-y-ticks (read in tests).
  return (u, splits) => {
    const labels = splits.map((v) => (v === null ? "" : spec.tick(v)));
    u.root.dataset.yTicks = labels.filter(Boolean).join(" ");
    return labels;
  };
}

function percentTicks(spec) {
  // A percent axis from about 10 to 100 on a chart this short got one label ("50"): steps up to
  // 25 and labels 20 px apart give it four (25, 50, 75, 100).
  return spec.scale === "percent" ? { space: 20, incrs: [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25] } : {};
}

function yScale(spec) {
  if (spec.scale === "percent") return { range: percentRange };
  if ((spec.scale === "loss" && curves.logLoss) || spec.scale === "log") return { distr: 3, log: 10 };
  if (spec.scale === "loss") return { range: (u, min, max) => [Math.min(0, min ?? 0), Math.min((max ?? 1) * 1.05, LOSS_AXIS_MAX)] };
  return { range: (u, min, max) => [Math.min(0, min ?? 0), (max ?? 1) * 1.05] };
}

function nearestValue(values, idx) {
  // The series' value at the cursor, or where it has none (another line's x), its nearest point.
  for (let d = 0; d < values.length; d++) {
    if (idx - d >= 0 && values[idx - d] !== null && values[idx - d] !== undefined) return values[idx - d];
    if (idx + d < values.length && values[idx + d] !== null && values[idx + d] !== undefined) return values[idx + d];
  }
  return null;
}

function chartOptions(spec, tables, width) {
  const x = X_AXES[curves.xAxis];
  const read = (u, v, s, idx) => {
    // Lines of other runs or models have their points at other x values: read their nearest one.
    const value = v ?? (spec.form === "layer_lines" || idx === null || idx === undefined ? null : nearestValue(u.data[s], idx));
    if (value === null || value === undefined) return null;
    return spec.scale === "log" && value <= LOG_FLOOR ? "0" : spec.digits(value);
  };
  const legendValue = (u, v, s, idx) => {
    const value = read(u, v, s, idx);
    if (value === null) return "–";
    // a smoothed line is read with its raw value beside it (the raw line is drawn, not listed)
    const raw = s > 1 && u.series[s - 1].label === `${u.series[s].label} (raw)` && idx !== null && idx !== undefined
      ? read(u, u.data[s - 1][idx], s - 1, idx) : null;
    return raw === null ? value : `${value} (raw ${raw})`;
  };
  return {
    width, height: CHART_HEIGHT,
    cursor: { sync: { key: CHART_SYNC_KEY }, drag: { x: true, y: false } },
    scales: { x: { time: false, range: (u, min, max) => (curves.zoomed[spec.id] ? [min, max] : sharedXRange()) }, y: yScale(spec) },
    axes: [
      { label: x.label, values: (u, splits) => splits.map((v) => (v === null ? "" : x.format(v))) },
      { size: 70, values: yLabels(spec), ...percentTicks(spec) },
    ],
    series: [
      { label: x.label, value: (u, v) => (v === null || v === undefined ? "–" : x.format(v)) },
      ...tables.map((t) => Object.assign({ value: legendValue }, t.series)),
    ],
    legend: { live: true },
    hooks: {
      setSelect: [(u) => { if (u.select.width > 0) zoomAll(true); }],
      ready: [(u) => u.over.addEventListener("dblclick", () => zoomAll(false))],
      setScale: [(u, key) => { if (key === "x" && curves.zoomed[spec.id]) shareZoom(u); }],
    },
  };
}

function zoomAll(zoomed) {
  // The charts share their x-axis: a zoom (drag) or its reset (double-click) holds for all of them.
  for (const spec of allSpecs()) curves.zoomed[spec.id] = zoomed;
  if (!zoomed) for (const chart of Object.values(curves.charts)) chart.setData(chart.data, true);
}

function shareZoom(source) {
  // The x range the user zoomed to on one chart, on every other chart too.
  if (curves.sharingZoom) return;
  curves.sharingZoom = true;
  const { min, max } = source.scales.x;
  for (const chart of Object.values(curves.charts)) if (chart !== source) chart.setScale("x", { min, max });
  curves.sharingZoom = false;
}

// ------------------------------------------------------------------ drawing

function countPoints(data) {
  let n = 0;
  for (let s = 1; s < data.length; s++) for (const v of data[s]) if (v !== null && v !== undefined) n++;
  return n;
}

function showNoData(spec, box) {
  // No data: no axes made up from nothing.
  if (curves.charts[spec.id]) { curves.charts[spec.id].destroy(); delete curves.charts[spec.id]; }
  box.replaceChildren(el("p", { className: "muted chart-empty", text: "no data yet: the curves appear a few seconds after training starts" }));
  box.dataset.points = "0";
  box.setAttribute("aria-label", `${spec.title}: no data yet`);
}

function renderChart(spec) {
  const box = $(`chart-${spec.id}`);
  const tables = spec.form === "layer_lines" ? buildLayerTables(spec) : buildTables(spec);
  const data = alignTables(tables);
  if (data[0].length === 0) { showNoData(spec, box); return; }
  const shape = JSON.stringify([curves.xAxis, curves.logLoss, tables.map((t) => t.series.label)]);
  let chart = curves.charts[spec.id];
  if (chart && curves.shapes[spec.id] !== shape) { chart.destroy(); chart = null; }
  if (!chart) {
    box.replaceChildren();
    curves.zoomed[spec.id] = false;
    chart = new uPlot(chartOptions(spec, tables, Math.max(240, box.clientWidth)), data, box);
    curves.charts[spec.id] = chart;
    curves.shapes[spec.id] = shape;
  } else {
    chart.setData(data, !curves.zoomed[spec.id]); // a zoomed chart keeps the user's range
  }
  box.dataset.points = String(countPoints(data));
  if (spec.scale === "loss") sayLossClipped(tables);
  const drawn = tables.filter((t) => !t.series.label.endsWith("(raw)")).map((t) => t.series.label);
  box.setAttribute("aria-label", `${spec.title}: ${drawn.length ? drawn.join(", ") : "no data yet"}`);
}

function sayLossClipped(tables) {
  // The lines that go above the loss axis's top (linear scale only), named, with how high.
  const over = curves.logLoss ? [] : tables.filter((t) => !t.series.label.endsWith("(raw)"))
    .map((t) => ({ label: t.series.label, top: Math.max(...t.ys.filter((v) => v !== null && Number.isFinite(v))) }))
    .filter((t) => t.top > LOSS_AXIS_MAX);
  const note = over.length ? `The loss axis stops at ${LOSS_AXIS_MAX} (a model that only guesses scores 2.30): `
    + `${over.map((t) => `${t.label} goes up to ${Number(t.top.toPrecision(3))}`).join("; ")}. Tick "loss on a log scale" to see every line whole.` : "";
  $("loss-clip").textContent = note;
  $("loss-clip").hidden = !note;
}

export function reserveLegends() {
  // Each chart's box keeps room for its legend (an entry per line drawn, wrapped to the box's
  // width) from the moment the runs shown are known, so nothing below moves when the lines come.
  for (const spec of allSpecs()) {
    const box = document.getElementById(`chart-${spec.id}`);
    if (!box || spec.form === "heat_strip") continue;
    // a run's models (1 to 4: room for four, as a run that starts by itself may have four); runs compared: all theirs
    const shown = curves.runs.reduce((n, r) => n + r.names.length, 0);
    const models = spec.form === "layer_lines" ? 6 : curves.runs.length > 1 ? shown : state.settings.limits.models[1];
    const entries = 1 + Math.max(1, models) * (spec.form === "layer_lines" ? 1 : spec.fields.length);
    const perLine = Math.max(1, Math.floor((box.clientWidth || 400) / LEGEND_ENTRY));
    box.style.minHeight = `${CHART_HEIGHT + 12 + LEGEND_LINE * Math.ceil(entries / perLine)}px`;
  }
}

function lossFloor(smoothing, classes = 10) {
  // The lowest training loss with label smoothing: the entropy of the smoothed target, which puts
  // 1 - smoothing + smoothing / classes on the true digit and smoothing / classes on each other one.
  const other = smoothing / classes;
  const own = 1 - smoothing + other;
  return -(own * Math.log(own)) - (classes - 1) * (other > 0 ? other * Math.log(other) : 0);
}

function lossFloorNote() {
  // With label smoothing the loss levels off well above 0: said beside the chart's title, or a
  // learner reads a loss of 0.5 as a bad one.
  const shown = new Set(curves.runs.map((r) => r.runId));
  const values = [...new Set(state.runs.filter((r) => shown.has(r.run_id)).map((r) => r.settings.label_smoothing).filter((v) => v > 0))];
  if (!values.length) return "";
  const floors = values.sort().map((v) => `${lossFloor(v).toFixed(2)} with label smoothing ${v}`);
  return ` · cannot go below ${floors.join(", ")} (not 0)`;
}

function renderCharts() {
  $("loss-floor").textContent = lossFloorNote();
  for (const spec of [...chartSpecs("curves"), ...chartSpecs("classes")]) RENDERERS[spec.form](spec);
  renderLayerCharts();
}

function renderLayerCharts() {
  const run = layerRun();
  const names = run ? run.names : [];
  const select = $("layer-model");
  const options = names.map((name, i) => `${i}:${name}`).join("|");
  if (select.dataset.options !== options) {
    select.dataset.options = options;
    select.replaceChildren(...names.map((name, i) => el("option", { value: String(i), text: name })));
    curves.layerModel = Math.min(curves.layerModel, Math.max(0, names.length - 1));
    select.value = String(curves.layerModel);
  }
  for (const spec of chartSpecs("layers")) RENDERERS[spec.form](spec);
}

function rebuildCharts() {
  for (const chart of Object.values(curves.charts)) chart.destroy();
  curves.charts = {};
  renderCharts();
}

export async function updateCurves(around = (draw) => draw()) {
  // New rows of the shown runs, drawn if any arrived (or the shown runs changed); ``around``
  // wraps the drawing (the page keeps what the user reads in place while the charts grow).
  const curvesChanged = (await fetchCurveRows()) || curves.dirty;
  const layersChanged = await fetchLayerRows();
  curves.dirty = false;
  if (curvesChanged) around(renderCharts);
  else if (layersChanged) around(renderLayerCharts);
}

// ------------------------------------------------------------------ setup

function chartBox(spec) {
  const caption = el("figcaption", { text: spec.title });
  if (spec.scale === "loss") caption.append(el("span", { id: "loss-floor", className: "muted" })); // in the caption's line: nothing moves
  return el("figure", { className: "chart-box", "data-chart": spec.id }, caption,
    el("div", { id: `chart-${spec.id}`, className: "chart", "data-points": "0", role: "img", "aria-label": `${spec.title}: no data yet` }));
}

function resizeCharts() {
  for (const spec of allSpecs()) {
    const chart = curves.charts[spec.id];
    if (!chart) continue;
    const width = Math.max(240, $(`chart-${spec.id}`).clientWidth);
    if (chart.width !== width) chart.setSize({ width, height: CHART_HEIGHT });
  }
  reserveLegends();
}

function setupControls() {
  $("layer-model").addEventListener("change", (e) => { curves.layerModel = Number(e.target.value); renderLayerCharts(); });
  $("layer-details").addEventListener("toggle", () => { if ($("layer-details").open) pollNow(); }); // its rows are fetched only while it is open
  $("x-axis").addEventListener("change", (e) => { curves.xAxis = e.target.value; rebuildCharts(); });
  $("smoothing").addEventListener("input", (e) => {
    curves.smoothing = Number(e.target.value);
    $("smoothing-value").textContent = curves.smoothing.toFixed(2);
    renderCharts();
  });
  $("log-loss").addEventListener("change", (e) => { curves.logLoss = e.target.checked; rebuildCharts(); });
  $("full-range").addEventListener("change", (e) => {
    curves.fullRange = e.target.checked;
    for (const [id, chart] of Object.entries(curves.charts)) if (!curves.zoomed[id]) chart.setData(chart.data, true);
  });
  $("smoothing-value").textContent = curves.smoothing.toFixed(2);
}

export function setupCharts() {
  // Each panel's grid ([data-panel] in the page) gets a box per chart of its metric kinds.
  const resize = new ResizeObserver(resizeCharts);
  for (const grid of document.querySelectorAll(".chart-grid[data-panel]")) {
    const detail = grid.hasAttribute("data-detail"); // charts declared "detail" go in the closed "Details"
    for (const spec of chartSpecs(grid.dataset.panel).filter((s) => Boolean(s.detail) === detail)) {
      grid.append(spec.form === "heat_strip" ? heatStripBox(spec) : chartBox(spec));
    }
    resize.observe(grid);
  }
  setupControls();
  renderCharts();
}
