"use strict";
// Live, interactive curves: drawn in the browser with uPlot from the runs' metrics rows
// (GET /runs/<id>/metrics?since=<n>, only the new rows at each poll).

const CHART_HEIGHT = 200; // px of plot; the box around it is sized in style.css so nothing jumps
const CHART_SYNC_KEY = "curves"; // one cursor across all charts
// Compare mode: one colour per run and model (tab10 after the four model colours).
const RUN_PALETTE = [...MODEL_COLORS, "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const X_AXES = {
  epoch: { label: "epoch", value: (row) => row.epoch, format: (v) => v.toFixed(2) },
  step: { label: "step", value: (row) => row.step, format: (v) => String(Math.round(v)) },
  time: { label: "time", value: (row) => row.time, format: (v) => `${Math.floor(v / 60)}:${String(Math.floor(v % 60)).padStart(2, "0")}` },
};
// digits: a value in the legend; tick: an axis label (as few digits as tell the ticks apart).
const CHART_SPECS = [
  { id: "loss", title: "Training loss", kind: "train", fields: ["loss"], smooth: true, scale: "loss", digits: (v) => v.toPrecision(4), tick: (v) => String(Number(v.toPrecision(2))) },
  { id: "accuracy", title: "Training accuracy (%)", kind: "train", fields: ["accuracy"], smooth: true, scale: "percent", digits: (v) => v.toFixed(2), tick: (v) => String(Number(v.toFixed(1))) },
  { id: "eval", title: "Validation and test accuracy (%)", kind: "eval", fields: ["val_accuracy", "test_accuracy"], scale: "percent", digits: (v) => v.toFixed(2), tick: (v) => String(Number(v.toFixed(1))) },
  { id: "lr", title: "Learning rate", kind: "train", fields: ["lr"], digits: (v) => v.toExponential(2), tick: (v) => (v === 0 ? "0" : v.toExponential(1)) },
  { id: "speed", title: "Images per second", kind: "train", fields: ["samples_per_sec"], smooth: true, digits: (v) => Math.round(v).toLocaleString("en-US"), tick: (v) => Math.round(v).toLocaleString("en-US") },
];
const FIELD_NAMES = { val_accuracy: "validation", test_accuracy: "test" };
// How each layer learns (rows of kind "layers"): one line per layer, for one model at a time.
const LAYER_COLORS = ["#000000", "#8c564b", "#9467bd", "#e377c2", "#17becf", "#7f7f00"]; // none of the model colours
const LOG_FLOOR = 1e-12; // a zero on a log chart (a dead layer's gradient) is drawn at the bottom, read as 0
const LAYER_SPECS = [
  { id: "layer-grad", title: "Gradient norm per layer", field: "grad_norm", scale: "log", digits: (v) => v.toPrecision(3), tick: (v) => v.toExponential(0) },
  { id: "layer-update", title: "Update / weight ratio per step, per layer", field: "update_ratio", scale: "log", digits: (v) => v.toExponential(2), tick: (v) => v.toExponential(0) },
  { id: "layer-weight", title: "Weight norm per layer", field: "weight_norm", digits: (v) => v.toPrecision(4), tick: (v) => String(Number(v.toPrecision(2))) },
  { id: "layer-dead", title: "ReLU outputs that are zero, per layer (%)", field: "dead_relu", scale: "percent", factor: 100, digits: (v) => v.toFixed(1), tick: (v) => String(Number(v.toFixed(1))) },
];

const curves = {
  runs: [], // [{runId, label, names, rows, next, gone}]
  charts: {}, // chart id -> uPlot
  shapes: {}, // chart id -> key of its series layout (a change rebuilds the chart)
  zoomed: {}, // chart id -> the user zoomed in (new data then keeps the zoom)
  xAxis: "epoch",
  smoothing: 0.6,
  logLoss: false,
  fullRange: false,
  layerModel: 0, // the model whose layers are charted
};

// ------------------------------------------------------------------ data

function setCurveRuns(list) {
  // list: [{runId, label, names}]; rows already fetched are kept for runs that stay.
  const old = new Map(curves.runs.map((r) => [r.runId, r]));
  if (list.map((r) => r.runId).join() !== curves.runs.map((r) => r.runId).join()) curves.dirty = true;
  curves.runs = list.map((r) => Object.assign(old.get(r.runId) || { rows: [], next: 0, layerRows: [], layerNext: 0, gone: false }, r));
}

async function fetchRows(run, kinds, rowsKey, nextKey) {
  // New rows of ``kinds`` of one run (GET /runs/<id>/metrics?since=); true if any arrived.
  let changed = false;
  let more = !run.gone;
  while (more) {
    let body;
    const versionKey = `${nextKey}Version`; // the file version the rows so far come from
    const known = run[versionKey] === undefined ? "" : `&version=${encodeURIComponent(run[versionKey])}`;
    try {
      body = await getJSON(`/runs/${encodeURIComponent(run.runId)}/metrics?since=${run[nextKey]}&kind=${kinds}${known}`);
    } catch (err) {
      if (err.status === 404) { run.gone = true; break; }
      if (err.status === 400 && run[nextKey] > 0) { run[rowsKey] = []; run[nextKey] = 0; changed = true; continue; } // replaced
      throw err;
    }
    if (known && body.version !== run[versionKey]) { run[rowsKey] = []; changed = true; } // replaced (a resume): rows from 0
    run[versionKey] = body.version;
    if (body.rows.length) { run[rowsKey] = run[rowsKey].concat(body.rows); changed = true; }
    run[nextKey] = body.next;
    more = body.more;
  }
  return changed;
}

async function fetchCurveRows() {
  // New curve rows of every shown run; true if any arrived.
  let changed = false;
  for (const run of curves.runs) if (await fetchRows(run, "train,eval", "rows", "next")) changed = true;
  return changed;
}

async function fetchLayerRows() {
  // The layer rows of the first shown run, only while that part of the page is open.
  const run = curves.runs[0];
  return Boolean(run && $("layer-details").open && (await fetchRows(run, "layers", "layerRows", "layerNext")));
}

function buildLayerTables(spec) {
  const x = X_AXES[curves.xAxis];
  const run = curves.runs[0];
  const rows = run ? run.layerRows.filter((r) => r.model === curves.layerModel) : [];
  const names = rows.length ? rows[rows.length - 1].layers : [];
  return names.map((name, i) => ({
    xs: rows.map(x.value),
    ys: rows.map((r) => {
      const v = r[spec.field][i];
      if (v === null || v === undefined) return null;
      return spec.scale === "log" ? Math.max(v, LOG_FLOOR) : v * (spec.factor || 1);
    }),
    series: { label: name, stroke: LAYER_COLORS[i % LAYER_COLORS.length], width: 1.5, spanGaps: true, points: { show: false } },
  })).filter((t) => t.ys.some((v) => v !== null));
}

function ema(values, weight) {
  // TensorBoard's smoothing: exponential moving average, debiased at the start.
  let last = 0;
  let count = 0;
  return values.map((v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return null;
    last = last * weight + (1 - weight) * v;
    count += 1;
    return last / (1 - Math.pow(weight, count));
  });
}

function seriesColor(runIndex, modelIndex) {
  if (curves.runs.length <= 1) return MODEL_COLORS[modelIndex % MODEL_COLORS.length];
  const offset = curves.runs.slice(0, runIndex).reduce((n, r) => n + r.names.length, 0);
  return RUN_PALETTE[(offset + modelIndex) % RUN_PALETTE.length];
}

function faint(color) {
  return `${color}40`; // 25 % opacity: the raw line behind the smoothed one
}

function buildTables(spec) {
  // One table [xs, ys] per line of the chart, with its uPlot series options.
  const x = X_AXES[curves.xAxis];
  const smoothing = spec.smooth ? curves.smoothing : 0;
  const tables = [];
  curves.runs.forEach((run, r) => {
    run.names.forEach((name, m) => {
      const color = seriesColor(r, m);
      const label = curves.runs.length > 1 ? `${run.label} · ${name}` : name;
      for (const field of spec.fields) {
        const rows = run.rows.filter((row) => row.kind === spec.kind && row.model === m && row[field] !== null && row[field] !== undefined);
        const xs = rows.map(x.value);
        const ys = rows.map((row) => row[field]);
        const suffix = spec.fields.length > 1 ? ` ${FIELD_NAMES[field]}` : "";
        const dash = field === "test_accuracy" ? [6, 4] : undefined;
        const points = { show: spec.kind === "eval", size: 6 };
        if (smoothing > 0) { // the raw line is drawn, not listed: the legend names the smoothed one
          tables.push({ xs, ys, series: { label: `${label}${suffix} (raw)`, class: "raw-series", stroke: faint(color), width: 1, spanGaps: true, points: { show: false } } });
          tables.push({ xs, ys: ema(ys, smoothing), series: { label: `${label}${suffix}`, stroke: color, width: 2, dash, spanGaps: true, points } });
        } else {
          tables.push({ xs, ys, series: { label: `${label}${suffix}`, stroke: color, width: 1.5, dash, spanGaps: true, points } });
        }
      }
    });
  });
  return tables;
}

function alignTables(tables) {
  // uPlot wants one shared x array: the union of all x values, gaps as null.
  const xs = [...new Set(tables.flatMap((t) => t.xs))].sort((a, b) => a - b);
  const index = new Map(xs.map((v, i) => [v, i]));
  const columns = tables.map((t) => {
    const ys = new Array(xs.length).fill(null);
    t.xs.forEach((v, i) => { ys[index.get(v)] = t.ys[i]; });
    return ys;
  });
  return [xs, ...columns];
}

// ------------------------------------------------------------------ charts

function percentRange(u, min, max) {
  if (curves.fullRange || min === null || max === null) return [0, 100];
  const low = Math.max(0, Math.floor(min - 0.5));
  const high = Math.min(100, Math.ceil(max + 0.5));
  return [low, Math.max(high, low + 1)];
}

function yScale(spec) {
  if (spec.scale === "percent") return { range: percentRange };
  if ((spec.scale === "loss" && curves.logLoss) || spec.scale === "log") return { distr: 3, log: 10 };
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

function sharedXRange() {
  // Every chart spans the same x values, so the synced cursor stands at the same x on each.
  if (curves.xAxis === "epoch") {
    const epochs = Math.max(1, ...curves.runs.map((r) => r.epochs || 0), ...curves.runs.flatMap((r) => r.rows.map((row) => Math.ceil(row.epoch))));
    return [0, epochs];
  }
  const xs = curves.runs.flatMap((r) => r.rows.map(X_AXES[curves.xAxis].value)).filter((v) => v !== null && v !== undefined);
  return xs.length ? [Math.min(0, ...xs), Math.max(...xs)] : [0, 1];
}

function chartOptions(spec, tables, width) {
  const x = X_AXES[curves.xAxis];
  const legendValue = (u, v, s, idx) => {
    // Lines of other runs or models have their points at other x values: read their nearest one.
    const value = v ?? (spec.field || idx === null || idx === undefined ? null : nearestValue(u.data[s], idx));
    if (value === null || value === undefined) return "–";
    return spec.scale === "log" && value <= LOG_FLOOR ? "0" : spec.digits(value);
  };
  return {
    width, height: CHART_HEIGHT,
    cursor: { sync: { key: CHART_SYNC_KEY }, drag: { x: true, y: false } },
    scales: { x: { time: false, range: (u, min, max) => (curves.zoomed[spec.id] ? [min, max] : sharedXRange()) }, y: yScale(spec) },
    axes: [
      { label: x.label, values: (u, splits) => splits.map((v) => (v === null ? "" : x.format(v))) },
      { size: 70, values: (u, splits) => splits.map((v) => (v === null ? "" : spec.tick(v))) },
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
  for (const spec of [...CHART_SPECS, ...LAYER_SPECS]) curves.zoomed[spec.id] = zoomed;
  if (!zoomed) for (const chart of Object.values(curves.charts)) chart.setData(chart.data, true);
}

let sharingZoom = false;

function shareZoom(source) {
  // The x range the user zoomed to on one chart, on every other chart too.
  if (sharingZoom) return;
  sharingZoom = true;
  const { min, max } = source.scales.x;
  for (const chart of Object.values(curves.charts)) if (chart !== source) chart.setScale("x", { min, max });
  sharingZoom = false;
}

function countPoints(data) {
  let n = 0;
  for (let s = 1; s < data.length; s++) for (const v of data[s]) if (v !== null && v !== undefined) n++;
  return n;
}

function renderChart(spec) {
  const box = $(`chart-${spec.id}`);
  const tables = spec.field ? buildLayerTables(spec) : buildTables(spec);
  const data = alignTables(tables);
  if (data[0].length === 0) { // no data: no axes made up from nothing
    if (curves.charts[spec.id]) { curves.charts[spec.id].destroy(); delete curves.charts[spec.id]; }
    box.replaceChildren(el("p", { className: "muted chart-empty", text: "no data yet" }));
    box.dataset.points = "0";
    box.setAttribute("aria-label", `${spec.title}: no data yet`);
    return;
  }
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
  const drawn = tables.filter((t) => !t.series.label.endsWith("(raw)")).map((t) => t.series.label);
  box.setAttribute("aria-label", `${spec.title}: ${drawn.length ? drawn.join(", ") : "no data yet"}`);
}

function renderCharts() {
  const empty = curves.runs.every((r) => r.rows.length === 0);
  $("curves-empty").hidden = !empty;
  for (const spec of CHART_SPECS) renderChart(spec);
  renderLayerCharts();
}

function renderLayerCharts() {
  const run = curves.runs[0];
  const names = run ? run.names : [];
  $("layer-run").textContent = curves.runs.length > 1 ? `Run ${run.label} (the first of the runs compared).` : "";
  const select = $("layer-model");
  const options = names.map((name, i) => `${i}:${name}`).join("|");
  if (select.dataset.options !== options) {
    select.dataset.options = options;
    select.replaceChildren(...names.map((name, i) => el("option", { value: String(i), text: name })));
    curves.layerModel = Math.min(curves.layerModel, Math.max(0, names.length - 1));
    select.value = String(curves.layerModel);
  }
  for (const spec of LAYER_SPECS) renderChart(spec);
}

function rebuildCharts() {
  for (const chart of Object.values(curves.charts)) chart.destroy();
  curves.charts = {};
  renderCharts();
}

async function updateCurves() {
  const curvesChanged = (await fetchCurveRows()) || curves.dirty;
  const layersChanged = await fetchLayerRows();
  curves.dirty = false;
  if (curvesChanged) renderCharts();
  else if (layersChanged) renderLayerCharts();
}

function chartBox(spec) {
  return el("figure", { className: "chart-box" }, el("figcaption", { text: spec.title }),
    el("div", { id: `chart-${spec.id}`, className: "chart", "data-points": "0", role: "img", "aria-label": `${spec.title}: no data yet` }));
}

function setupCharts() {
  const grid = $("chart-grid");
  for (const spec of CHART_SPECS) grid.append(chartBox(spec));
  for (const spec of LAYER_SPECS) $("layer-chart-grid").append(chartBox(spec));
  $("layer-model").addEventListener("change", (e) => { curves.layerModel = Number(e.target.value); renderLayerCharts(); });
  $("layer-details").addEventListener("toggle", () => { if ($("layer-details").open) pollNow(); });
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
  const resize = new ResizeObserver(() => {
    for (const spec of [...CHART_SPECS, ...LAYER_SPECS]) {
      const chart = curves.charts[spec.id];
      const width = Math.max(240, $(`chart-${spec.id}`).clientWidth);
      if (chart && chart.width !== width) chart.setSize({ width, height: CHART_HEIGHT });
    }
  });
  resize.observe(grid);
  resize.observe($("layer-chart-grid"));
  renderCharts();
}
