// The data behind the curves: the runs' metrics rows (GET /runs/<id>/metrics?since=<n>, only the
// new rows at each poll) and the lines made from them, one table [xs, ys] per line.

import { $, getJSON, RUN_PALETTE } from "./common.js";
import { state } from "./state.js";

const curves = state.curves; // the curves' part of the page state
export const X_AXES = {
  epoch: { label: "epoch", value: (row) => row.epoch, format: (v) => v.toFixed(2) },
  step: { label: "step", value: (row) => row.step, format: (v) => String(Math.round(v)) },
  time: { label: "time", value: (row) => row.time, format: (v) => `${Math.floor(v / 60)}:${String(Math.floor(v % 60)).padStart(2, "0")}` },
};
// A "layer_lines" chart: one line per element of a list field (a layer each, named by the spec's
// "names" field), for one model at a time.
const LAYER_COLORS = ["#000000", "#8c564b", "#9467bd", "#e377c2", "#17becf", "#7f7f00"]; // none of the model colours
export const LOG_FLOOR = 1e-12; // a zero on a log chart (a dead layer's gradient) is drawn at the bottom, read as 0

// ------------------------------------------------------------------ rows

export function setCurveRuns(list) {
  // list: [{runId, label, names, colors}]; rows already fetched are kept for runs that stay.
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

export function panelKinds(...panels) {
  // The metric kinds (GET /config) whose charts go in these parts of the page, comma-separated.
  return state.settings.metric_kinds.filter((k) => panels.includes(k.panel)).map((k) => k.name).join(",");
}

export async function fetchCurveRows() {
  // New rows of every shown run, of the kinds charted at every poll; true if any arrived.
  let changed = false;
  const kinds = panelKinds("curves", "classes");
  for (const run of curves.runs) if (await fetchRows(run, kinds, "rows", "next")) changed = true;
  return changed;
}

export function layerRun() {
  // The run whose layers are charted: the one Explore shows.
  return curves.runs[0];
}

export async function fetchLayerRows() {
  // The layer rows of the picked run, only while that part of the page is open.
  const run = layerRun();
  return Boolean(run && $("layer-details").open && (await fetchRows(run, panelKinds("layers"), "layerRows", "layerNext")));
}

// ------------------------------------------------------------------ lines

export function buildLayerTables(spec) {
  const x = X_AXES[curves.xAxis];
  const run = layerRun();
  const rows = run ? run.layerRows.filter((r) => r.kind === spec.kind && r.model === curves.layerModel) : [];
  const names = rows.length ? rows[rows.length - 1][spec.names] : [];
  return names.map((name, i) => ({
    xs: rows.map(x.value),
    ys: rows.map((r) => {
      const v = r[spec.fields[0]][i];
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

export function seriesColor(runIndex, modelIndex) {
  // Compare mode: one colour per run and model (the model colours, then more).
  if (curves.runs.length <= 1) return curves.runs[0].colors[modelIndex]; // each model's own
  const offset = curves.runs.slice(0, runIndex).reduce((n, r) => n + r.names.length, 0);
  return RUN_PALETTE[(offset + modelIndex) % RUN_PALETTE.length];
}

// Where lines often coincide (models with the same learning rate), each after the first is dashed
// in a pattern of its own: a line drawn over another lets it show through its gaps.
const OVERLAP_DASHES = [[12, 12], [4, 14], [18, 8, 3, 8]];

function faint(color) {
  return `${color}40`; // 25 % opacity: the raw line behind the smoothed one
}

function fieldTables(spec, run, m, field, look) {
  // The line of one field of one model (and, when smoothed, its raw line behind it).
  const x = X_AXES[curves.xAxis];
  const smoothing = spec.smooth ? curves.smoothing : 0;
  const rows = run.rows.filter((row) => row.kind === spec.kind && row.model === m && row[field] !== null && row[field] !== undefined);
  const xs = rows.map(x.value);
  const ys = rows.map((row) => row[field]);
  const label = `${look.label}${spec.fields.length > 1 ? ` ${(spec.field_labels || {})[field] || field}` : ""}`;
  const dashed = (spec.dashed || []).includes(field);
  const dash = dashed ? [6, 4] : spec.overlap && look.line > 0 ? OVERLAP_DASHES[(look.line - 1) % OVERLAP_DASHES.length] : undefined;
  const points = { show: Boolean(spec.points), size: 6 };
  if (smoothing > 0) { // the raw line is drawn, not listed: the legend names the smoothed one
    return [
      { xs, ys, series: { label: `${label} (raw)`, class: "raw-series", stroke: faint(look.color), width: 1, spanGaps: true, points: { show: false } } },
      { xs, ys: ema(ys, smoothing), series: { label, stroke: look.color, width: look.best ? 3.5 : 2, dash, spanGaps: true, points } },
    ];
  }
  return [{ xs, ys, series: { label, stroke: look.color, width: look.best ? 3 : 1.5, dash, spanGaps: true, points } }];
}

export function buildTables(spec) {
  // One table [xs, ys] per line of the chart, with its uPlot series options.
  const tables = [];
  let line = 0; // the line's place on the chart, over every run shown
  curves.runs.forEach((run, r) => {
    run.names.forEach((name, m) => {
      // compared runs: each line named by its run; the best run's lines thicker and marked
      const runLabel = run.best ? `★ best: ${run.label}` : run.label;
      const look = { color: seriesColor(r, m), label: curves.runs.length > 1 ? `${runLabel} · ${name}` : name, line: line++, best: run.best };
      for (const field of spec.fields) tables.push(...fieldTables(spec, run, m, field, look));
    });
  });
  return tables;
}

export function alignTables(tables) {
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

export function sharedXRange() {
  // Every chart spans the same x values, so the synced cursor stands at the same x on each.
  if (curves.xAxis === "epoch") {
    const epochs = Math.max(1, ...curves.runs.map((r) => r.epochs || 0), ...curves.runs.flatMap((r) => r.rows.map((row) => Math.ceil(row.epoch))));
    return [0, epochs];
  }
  const xs = curves.runs.flatMap((r) => r.rows.map(X_AXES[curves.xAxis].value)).filter((v) => v !== null && v !== undefined);
  return xs.length ? [Math.min(0, ...xs), Math.max(...xs)] : [0, 1];
}
