// A "heat_strip" chart: for each shown run and model, a table of a list field (epochs down, the
// spec's columns across: digits 0-9 for per-digit accuracy), each cell shaded by how far it is
// below the model's mean for the epoch, so the columns that lag stand out; the numbers are in the cells, for eyes and screen
// readers alike. With runs compared, the tables stand side by side, each named by its run.

import { el } from "./common.js";
import { state } from "./state.js";

const curves = state.curves; // the rows of the shown runs (fetched with the curves)
const MAX_ROWS = 12; // epochs shown per table; a longer run shows evenly spaced ones, first and last kept
const LAG_FULL = 10; // points below the epoch's mean at which a cell is at its strongest shade

export function heatStripBox(spec) {
  return el("figure", { className: "chart-box heat-box", "data-chart": spec.id }, el("figcaption", { text: spec.title }),
    el("p", { className: "muted", text: spec.explain || "" }),
    el("div", { id: `chart-${spec.id}`, className: "heat-strips", "data-points": "0" }));
}

function shownEpochs(rows) {
  // At most MAX_ROWS rows: every one, or evenly spaced ones with the first and the last.
  if (rows.length <= MAX_ROWS) return rows;
  const step = (rows.length - 1) / (MAX_ROWS - 1);
  return [...new Set(Array.from({ length: MAX_ROWS }, (_, i) => Math.round(i * step)))].map((i) => rows[i]);
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

function stripTable(spec, title, color, rows) {
  const field = spec.fields[0];
  const shown = shownEpochs(rows);
  const last = rows[rows.length - 1][field];
  const swatch = el("span", { className: "swatch", "aria-hidden": "true" });
  swatch.style.background = color; // through the CSSOM: the page's CSP refuses style attributes
  const caption = el("caption", {}, swatch, ` ${title}`, el("span", { className: "muted", text: ` · ${weakest(last, spec.digits, spec.columns)}` }));
  const head = el("tr", {}, el("th", { scope: "col", text: "epoch" }),
    ...spec.columns.map((name) => el("th", { scope: "col", text: name })));
  const body = shown.map((row) => {
    const values = row[field];
    const average = mean(values);
    return el("tr", {}, el("th", { scope: "row", text: String(Math.round(row.epoch)) }),
      ...values.map((v) => cell(v, average, spec.digits)));
  });
  const note = shown.length < rows.length ? el("p", { className: "muted", text: `${shown.length} of ${rows.length} epochs shown, evenly spaced` }) : "";
  return el("div", { className: "heat-strip" }, el("table", {}, caption, el("thead", {}, head), el("tbody", {}, ...body)), note);
}

function missingNote(spec, run, name) {
  // Why a run's model has no table: nothing yet, or a run made before the kind existed (its other
  // kinds have rows from later than the strip's would be).
  const others = run.rows.filter((r) => r.kind !== spec.kind).map((r) => r.epoch);
  const before = others.length && Math.max(...others) >= 1;
  return el("p", { className: "muted heat-missing", text: `${name}: ${before ? spec.missing : spec.waiting}` });
}

export function renderHeatStrip(spec) {
  const box = document.getElementById(`chart-${spec.id}`);
  const parts = [];
  let points = 0;
  curves.runs.forEach((run, r) => {
    run.names.forEach((name, m) => {
      const title = curves.runs.length > 1 ? `${run.label} · ${name}` : name;
      const rows = run.rows.filter((row) => row.kind === spec.kind && row.model === m).sort((a, b) => a.epoch - b.epoch);
      points += rows.length;
      const color = run.colors[m];
      parts.push(rows.length ? stripTable(spec, title, color, rows) : missingNote(spec, run, title));
    });
  });
  box.replaceChildren(...(parts.length ? parts : [el("p", { className: "muted chart-empty", text: "no data yet" })]));
  box.dataset.points = String(points);
}
