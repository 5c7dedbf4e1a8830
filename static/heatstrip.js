// A "heat_strip" chart: for each shown run and model, a table of a list field (epochs down, the
// spec's columns across: digits 0-9 for per-digit accuracy), each cell shaded by how far it is
// below the model's mean for the epoch, so the columns that lag stand out; the numbers are in the
// cells, for eyes and screen readers alike. With runs compared, each run's tables stand together,
// named by the run, in the colours of its curves.

import { seriesColor } from "./chartdata.js";
import { el } from "./common.js";
import { state } from "./state.js";

const curves = state.curves; // the rows of the shown runs (fetched with the curves)
const MAX_ROWS = 6; // epochs shown per table (style.css keeps room for them, so a table never grows and
// nothing below it moves); a longer run shows evenly spaced ones, the first and the last kept
const LAG_FULL = 10; // points below the epoch's mean at which a cell is at its strongest shade

export function heatStripBox(spec) {
  return el("figure", { className: "chart-box heat-box", "data-chart": spec.id }, el("figcaption", { text: spec.title }),
    el("p", { className: "muted", text: spec.explain || "" }),
    el("div", { id: `chart-${spec.id}`, className: "heat-strips", "data-points": "0" }));
}

function shownEpochs(epochs) {
  // The epochs a table has rows for, known when the run starts (its space is kept from then on):
  // every one, or MAX_ROWS evenly spaced with the first and the last.
  if (epochs <= MAX_ROWS) return Array.from({ length: epochs }, (_, i) => i + 1);
  const step = (epochs - 1) / (MAX_ROWS - 1);
  return [...new Set(Array.from({ length: MAX_ROWS }, (_, i) => 1 + Math.round(i * step)))];
}

function shade(lag) {
  // White for a cell at or above the mean, to a light red at LAG_FULL points below it (dark text
  // keeps its contrast on every shade).
  const t = Math.max(0, Math.min(1, lag / LAG_FULL));
  const g = Math.round(255 - t * (255 - 170));
  return `rgb(255, ${g}, ${g})`;
}

function mean(values) {
  const known = values.filter((v) => v !== null && v !== undefined);
  return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
}

function weakest(values, format, columns) {
  // The column furthest behind in the latest epoch, in words.
  let digit = -1;
  values.forEach((v, d) => { if (v !== null && v !== undefined && (digit < 0 || v < values[digit])) digit = d; });
  if (digit < 0) return "";
  const known = values.filter((v) => v !== null && v !== undefined);
  if (known.every((v) => v === known[0])) return `all alike (${format(known[0])} %)`; // none lags
  return `weakest: ${columns[digit]} (${format(values[digit])} %)`;
}

function cell(value, average, format) {
  if (value === null || value === undefined) return el("td", { text: "–" });
  const td = el("td", { text: format(value) });
  td.style.background = shade(average - value); // through the CSSOM: the page's CSP refuses style attributes
  return td;
}

function stripTable(spec, title, color, rows, epochs) {
  const field = spec.fields[0];
  const byEpoch = new Map(rows.map((row) => [Math.round(row.epoch), row[field]]));
  const shown = shownEpochs(Math.max(epochs, ...byEpoch.keys()));
  const last = rows.length ? rows[rows.length - 1][field] : null;
  const swatch = el("span", { className: "swatch", "aria-hidden": "true" });
  swatch.style.background = color; // through the CSSOM: the page's CSP refuses style attributes
  const caption = el("caption", {}, swatch, ` ${title}`,
    el("span", { className: "muted", text: ` · ${last ? weakest(last, spec.digits, spec.columns) : spec.waiting}` }));
  const head = el("tr", {}, el("th", { scope: "col", text: "epoch" }),
    ...spec.columns.map((name) => el("th", { scope: "col", text: name })));
  const body = shown.map((epoch) => {
    const values = byEpoch.get(epoch) || spec.columns.map(() => null);
    const average = mean(values);
    return el("tr", {}, el("th", { scope: "row", text: String(epoch) }), ...values.map((v) => cell(v, average, spec.digits)));
  });
  const note = shown.length < Math.max(epochs, rows.length)
    ? el("p", { className: "muted", text: `${shown.length} of ${epochs} epochs shown, evenly spaced` }) : "";
  return el("div", { className: "heat-strip" }, el("table", {}, caption, el("thead", {}, head), el("tbody", {}, ...body)), note);
}

function hasLaterRows(spec, run) {
  // A run made before the kind existed: it has rows of the other kinds written at the same moment
  // as this kind's would be (at an epoch end, say: they are appended together).
  const moments = Object.fromEntries(state.settings.metric_kinds.map((k) => [k.name, k.moment]));
  return run.rows.some((r) => r.kind !== spec.kind && moments[r.kind] === moments[spec.kind]);
}

function missingNote(spec, name) {
  return el("div", { className: "heat-strip" }, el("p", { className: "muted heat-missing", text: `${name}: ${spec.missing}` }));
}

export function renderHeatStrip(spec) {
  // A group of tables per run (its models side by side), in the colours its curves have.
  const box = document.getElementById(`chart-${spec.id}`);
  let points = 0;
  const groups = curves.runs.map((run, r) => el("div", { className: "heat-run" }, ...run.names.map((name, m) => {
    const title = curves.runs.length > 1 ? `${run.label} · ${name}` : name;
    const rows = run.rows.filter((row) => row.kind === spec.kind && row.model === m).sort((a, b) => a.epoch - b.epoch);
    points += rows.length;
    if (!rows.length && hasLaterRows(spec, run)) return missingNote(spec, title);
    return stripTable(spec, title, seriesColor(r, m), rows, run.epochs || 1);
  })));
  box.replaceChildren(...(groups.length ? groups : [el("p", { className: "muted chart-empty", text: "no data yet" })]));
  box.dataset.points = String(points);
}
