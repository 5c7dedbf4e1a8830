// The run table (settings and results of every run, sortable), the comparison of selected runs
// (in the URL: /?runs=<id>,<id>) and which runs the curves show.

import { $, el, fmt, fmtSeconds, modelColor } from "./common.js";
import { setCurveRuns } from "./chartdata.js";
import { reserveLegends } from "./charts.js";
import { exploreRun } from "./draw.js";
import { optimizerName, scheduleName } from "./names.js";
import { pollNow } from "./poll.js";
import { changeRun, deleteRun, handIn, openRun, rerunSettings, resumeRun, runAction, showHistoryError } from "./runactions.js";
import { state } from "./state.js";
import { currentView, setUrl, urlList, urlParam } from "./url.js";
import { goToView } from "./views.js";
import { mayAct, ownerText } from "./owners.js";

function perModel(run, pick) {
  // One value if every model has the same, else each model's, in model order.
  const values = run.models.map(pick).map((v) => (v === null || v === undefined ? "–" : String(v)));
  return new Set(values).size <= 1 ? (values[0] || "–") : values.join(" / ");
}

function pct(value) {
  return fmt(value, 2, " %");
}

function otherSettings(r) {
  // The settings less often compared, in one wrapped cell: schedule, images, precision, device.
  const images = r.settings.train_samples ? `${r.settings.train_samples.toLocaleString("en-US")} images` : "all images";
  return [scheduleName(r.settings.lr_schedule), images, r.precision, r.device].filter(Boolean).join(" · ");
}

// Results and state first, then what was set; the run table fits 1,280 px without sideways scrolling.
const RUN_COLUMNS = [
  { key: "started", label: "Started", value: (r) => r.started_at, text: (r) => (r.started_at ? new Date(r.started_at * 1000).toLocaleString() : "–") },
  { key: "state", label: "State", value: (r) => r.state, text: (r) => r.state },
  { key: "best", label: "Best test %", value: (r) => r.best_test_accuracy ?? -1, text: (r) => perModel(r, (m) => (m.best_test_accuracy === null ? null : m.best_test_accuracy.toFixed(2))) },
  { key: "final", label: "Final test %", value: (r) => Math.max(-1, ...r.models.map((m) => m.final_test_accuracy ?? -1)), text: (r) => perModel(r, (m) => (m.final_test_accuracy === null ? null : m.final_test_accuracy.toFixed(2))) },
  { key: "duration", label: "Duration", value: (r) => r.duration_seconds ?? -1, text: (r) => fmtSeconds(r.duration_seconds) },
  { key: "models", label: "Models", value: (r) => r.models.map((m) => m.name).join(), text: (r) => r.models.map((m) => `${m.name} [${m.kernels.join(",")}]`).join("; ") },
  { key: "optimizer", label: "Optimizer", value: (r) => perModel(r, (m) => m.optimizer), text: (r) => perModel(r, (m) => optimizerName(m.optimizer)) },
  { key: "lr", label: "Learning rate", value: (r) => Math.max(...r.models.map((m) => m.learning_rate)), text: (r) => perModel(r, (m) => Number(m.learning_rate.toPrecision(4))) },
  { key: "batch", label: "Batch", value: (r) => Math.max(...r.models.map((m) => m.batch_size)), text: (r) => perModel(r, (m) => m.batch_size) },
  { key: "epochs", label: "Epochs", value: (r) => r.settings.epochs, text: (r) => String(r.settings.epochs ?? "–") },
  { key: "other", label: "Other settings", value: otherSettings, text: otherSettings },
  { key: "sweep", label: "Sweep", value: (r) => (r.sweep ? `${r.sweep.sweep_id}:${String(r.sweep.trial).padStart(3, "0")}` : ""), text: (r) => (r.sweep ? `trial ${r.sweep.trial + 1} of ${sweepName(r.sweep.sweep_id)}` : "") },
  { key: "note", label: "Note", value: (r) => r.note || "", text: (r) => r.note || "" },
  { key: "owner", label: "Owner", value: (r) => ownerText(r.owner), text: (r) => ownerText(r.owner), inClass: true },
];

function runColumns() {
  // The run table's columns: whose each run is only in a class.
  return RUN_COLUMNS.filter((c) => !c.inClass || state.me);
}

function sweepName(sweepId) {
  // A sweep's name (GET /sweeps, kept by the Sweeps view), else its id.
  return state.sweepNames[sweepId] || sweepId;
}

// ------------------------------------------------------------------ the run table

function sortedRuns(runs) {
  const column = runColumns().find((c) => c.key === state.sortKey);
  return [...runs].sort((a, b) => {
    const x = column.value(a);
    const y = column.value(b);
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return order * state.sortDir || (a.run_id < b.run_id ? 1 : -1);
  });
}

function renderHistoryHead() {
  // Drawn again only when the sort changes: a button replaced under the pointer loses its click.
  const key = `${state.sortKey}:${state.sortDir}:${runColumns().length}`; // (a class adds the Owner column)
  if ($("runs-head").dataset.key === key) return;
  $("runs-head").dataset.key = key;
  const row = el("tr", {}, el("th", {}, el("span", { className: "desktop-only", text: "Compare" }), el("span", { className: "phone-only", text: "Sort by:" })));
  for (const column of runColumns()) {
    const button = el("button", { type: "button", className: "sort", text: column.label });
    button.addEventListener("click", () => {
      state.sortDir = state.sortKey === column.key ? -state.sortDir : -1;
      state.sortKey = column.key;
      setUrl({ sort: column.key === "started" && state.sortDir < 0 ? null : `${state.sortDir < 0 ? "-" : ""}${column.key}` }, false);
      listAll(); // the order changes anyway: every run in it
    });
    const sorted = state.sortKey === column.key ? (state.sortDir < 0 ? "descending" : "ascending") : "none";
    row.append(el("th", { "aria-sort": sorted, scope: "col" }, button));
  }
  row.append(el("th", { text: "Actions" }));
  $("runs-head").replaceChildren(row);
}

function renderCompareButton() {
  $("compare-selected").disabled = state.selected.size < 2;
  $("compare-selected").textContent = `Compare selected (${state.selected.size})`;
  // One CSV of the ticked runs' metrics (every run's when none is ticked), each row with its settings.
  const ticked = [...state.selected].sort();
  $("runs-csv").href = ticked.length ? `/runs.csv?runs=${ticked.map(encodeURIComponent).join(",")}` : "/runs.csv";
  $("runs-csv").textContent = ticked.length ? `metrics of the ${ticked.length} ticked run${ticked.length === 1 ? "" : "s"} (one CSV)` : "metrics of every run (one CSV)";
}

async function importRun(file) {
  // A run's export.zip made a run here (POST /runs/import): said, with a link to open it.
  $("import-note").textContent = `importing ${file.name}…`;
  let answer;
  try {
    const response = await fetch("/runs/import", { method: "POST", headers: { "Content-Type": "application/zip" }, body: file });
    answer = { ok: response.ok, status: response.status, data: await response.json().catch(() => ({})) };
  } catch (_) {
    answer = { ok: false, status: 0, data: { error: "the server is not reachable; try again when it is back" } };
  }
  $("import-file").value = "";
  if (!answer.ok) {
    $("import-note").textContent = "";
    const why = (answer.data.error || `HTTP ${answer.status}`).replace(/^body: /, ""); // the body is the file
    showHistoryError(`${file.name} was not imported: ${why}`);
    return;
  }
  showHistoryError("");
  const open = el("a", { href: `/?view=train&run=${encodeURIComponent(answer.data.run_id)}`, text: `open run ${answer.data.run_id}` });
  $("import-note").replaceChildren(`${file.name} imported: `, open);
  if (state.listedRunIds) state.listedRunIds.add(answer.data.run_id); // asked for here: listed at once, not held back
  pollNow();
}

function listedRuns(runs) {
  // The runs the table lists. While it is on screen with rows in it, a run that appears by itself
  // (a queue, a sweep, another tab) waits behind "Show 1 new run": inserted, it would push every
  // row under it down while they are read. Elsewhere (or with the table empty) it is listed at once.
  const listed = state.listedRunIds;
  if (currentView() !== "runs" || listed === null || listed.size === 0) {
    state.listedRunIds = new Set(runs.map((r) => r.run_id));
    return runs;
  }
  for (const id of listed) if (!runs.some((r) => r.run_id === id)) listed.delete(id);
  return runs.filter((r) => listed.has(r.run_id));
}

function renderNewRuns(runs, listed) {
  // "Show 1 new run (running)": what waits, and what it is doing, so nobody takes it for lost.
  const waiting = runs.filter((r) => !listed.includes(r));
  const states = [...new Set(waiting.map((r) => r.state))].join(", ");
  $("show-new-runs").hidden = waiting.length === 0;
  $("show-new-runs").textContent = `Show ${waiting.length} new run${waiting.length === 1 ? "" : "s"} (${states})`;
}

function listAll() {
  state.listedRunIds = null;
  renderHistory();
}

function renderHistory(runs = state.runs) {
  state.runs = runs;
  const known = new Set(runs.map((r) => r.run_id));
  for (const id of state.selected) if (!known.has(id)) state.selected.delete(id);
  renderHistoryHead();
  for (const id of rowCache.keys()) if (!known.has(id)) rowCache.delete(id);
  const listed = listedRuns(runs);
  renderNewRuns(runs, listed);
  const wanted = runs.length ? sortedRuns(listed).map(historyRow)
    : [el("tr", {}, el("td", { colspan: String(runColumns().length + 2), className: "muted", text: "no runs yet" }))];
  // Rows are updated in place and moved only when the order changed: the table changes at every
  // poll while a run trains, and a button rebuilt between press and release loses the click.
  const body = $("runs-rows");
  wanted.forEach((tr, i) => { if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null); });
  while (body.children.length > wanted.length) body.lastElementChild.remove();
  const queued = runs.filter((r) => r.state === state.settings.states.queued && mayAct(r.owner)).length; // a student's own
  const when = state.workers > 1 ? "the next starts when a worker is free" : "the next starts when the active run ends or is stopped";
  const turns = state.me ? "the workers take turns across the class" : when;
  $("queue-count").textContent = queued ? `${queued} run${queued === 1 ? "" : "s"}${state.me && state.me.role === "student" ? " of yours" : ""} queued (see the run history): ${turns}` : "";
  renderCompareButton();
  renderComparison();
}

export function renderRuns(body) {
  // A GET /runs answer: how much the runs take on disk, and the table.
  const size = body.runs_bytes >= 1e9 ? `${(body.runs_bytes / 1e9).toFixed(2)} GB` : `${(body.runs_bytes / 1e6).toFixed(1)} MB`;
  const student = state.me && state.me.role === "student"; // the runs folder's size is the class's, not theirs
  $("runs-size").textContent = `${body.runs.length} run${body.runs.length === 1 ? "" : "s"}${student ? "" : `, ${size} on disk`}. `
    + (body.keep_runs > 0 ? `Only the newest ${body.keep_runs} are kept (server option --keep-runs): older ones are removed after each run, starred ones never.`
      : "Every run is kept until you delete it.");
  renderHistory(body.runs);
}

function actionButton(text, label, onClick, attrs = {}) {
  const button = el("button", { type: "button", text, "aria-label": label, ...attrs });
  button.addEventListener("click", onClick);
  return button;
}

function actionsCell(run) {
  // star, open, re-run, note, then resume (a cut-off run), cancel (a queued one) or delete; on
  // another's run in a class, only open and re-run (reading it, and its settings in the form).
  const label = `run ${run.run_id}`;
  const { states } = state.settings;
  if (!mayAct(run.owner)) {
    return el("td", { className: "actions" }, actionButton("open", `open ${label}`, () => openRun(run.run_id)),
      actionButton("re-run", `re-run ${label} with its settings`, () => rerunSettings(run.run_id), { title: "fill the form with this run's settings" }));
  }
  const actions = el("td", { className: "actions" },
    actionButton(run.starred ? "★" : "☆", `star ${label}`, () => changeRun(run.run_id, { starred: !run.starred }),
      { className: "star", "aria-pressed": String(run.starred), title: "starred runs are never removed by --keep-runs" }),
    actionButton("open", `open ${label}`, () => openRun(run.run_id)),
    actionButton("re-run", `re-run ${label} with its settings`, () => rerunSettings(run.run_id), { title: "fill the form with this run's settings" }),
    actionButton("note", `write a note on ${label}`, () => {
      const text = window.prompt(`A short note on run ${run.run_id} (at most 200 characters):`, run.note || "");
      if (text !== null) changeRun(run.run_id, { note: text.slice(0, 200) });
    }));
  if (run.resumable) {
    const busy = state.runs.filter((r) => states.active.includes(r.state)).length >= state.workers;
    const resume = actionButton("resume", `resume ${label}`, () => resumeRun(run.run_id), { className: "resume",
      title: busy ? (state.workers > 1 ? "every worker is busy: resume this one when a run has ended" : "a run is training: resume this one when it has ended") : "go on from the last epoch-end checkpoint, in this same run" });
    resume.disabled = busy;
    actions.append(resume);
  }
  if (states.active.includes(run.state) && run.state !== "stopping") {
    const whose = run.owner && ownerText(run.owner) !== "you" ? `${ownerText(run.owner)}'s run` : "this run";
    actions.append(actionButton("stop", `stop ${label}`, () => {
      if (run.owner && ownerText(run.owner) !== "you" && !window.confirm(`Stop ${whose} (${run.run_id})? It can be resumed from its last epoch end, if it has finished one.`)) return;
      runAction(run.run_id, "stop", `Run ${run.run_id} is stopping.`);
    }, { className: "delete", title: `stop ${whose} at its next batch (resumable from its last epoch end)` }));
  }
  if (run.state === states.queued) {
    actions.append(actionButton("cancel", `cancel queued ${label}`, () => runAction(run.run_id, "cancel", `Queued run ${run.run_id} cancelled.`),
      { className: "delete", title: "take this run out of the queue" }));
  } else {
    const remove = actionButton("delete", `delete ${label}`, () => deleteRun(run.run_id), { className: "delete" });
    remove.disabled = states.active.includes(run.state) || Boolean(run.handed_in_at && state.me.role === "student");
    if (run.handed_in_at && state.me.role === "student") remove.title = "handed in: withdraw it first";
    actions.append(remove);
  }
  if (state.me && run.state === "finished" && (state.me.role === "student" || run.handed_in_at)) { // a class's hand-ins
    const hand = actionButton(run.handed_in_at ? "withdraw" : "hand in", `${run.handed_in_at ? "withdraw" : "hand in"} ${label}`,
      () => handIn(run.run_id, !run.handed_in_at), { title: run.handed_in_at ? "take the hand-in back (while hand-ins are open)" : "hand this run in to the teacher" });
    if (!state.me.hand_ins_open) {
      hand.disabled = true;
      hand.title = "hand-ins are closed (the teacher closes them at the deadline)";
    }
    actions.append(hand);
  }
  return actions;
}

const rowCache = new Map(); // run id -> {tr, box, actionsKey, cells}: the table's rows, kept between polls

function actionsKey(run) {
  // What the actions cell depends on: drawn again only when one of these changes.
  const busy = state.runs.filter((r) => state.settings.states.active.includes(r.state)).length >= state.workers;
  return JSON.stringify([run.starred, run.resumable, run.state, run.note, busy, state.workers, run.handed_in_at,
    state.me && state.me.hand_ins_open]);
}

function historyRow(run) {
  let row = rowCache.get(run.run_id);
  if (!row) {
    const box = el("input", { type: "checkbox", "aria-label": `compare run ${run.run_id}` });
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(run.run_id); else state.selected.delete(run.run_id);
      setUrl({ ticked: [...state.selected].join(",") }, false);
      renderCompareButton();
    });
    // data-label: on a phone each row is a card, each cell headed by its column's name
    const cells = runColumns().map((column) => el("td", { "data-column": column.key, "data-label": column.label }));
    row = { tr: el("tr", { "data-run-id": run.run_id }, el("td", { "data-label": "Compare" }, box), ...cells, el("td")), box, actionsKey: null, cells, texts: [] };
    rowCache.set(run.run_id, row);
  }
  row.box.checked = state.selected.has(run.run_id);
  const key = actionsKey(run);
  if (key !== row.actionsKey) {
    row.actionsKey = key;
    row.tr.lastElementChild.replaceWith(actionsCell(run));
  }
  runColumns().forEach((column, i) => {
    const text = column.key === "state" ? `${stateText(run)}\u0000${run.error || ""}` : column.text(run);
    if (row.texts[i] === text) return;
    row.texts[i] = text;
    const cell = row.cells[i];
    if (column.key === "state") {
      // a broken run's folder cannot be read as it should: say why on hover and to screen readers
      const why = run.state === state.settings.states.broken && run.error ? { title: run.error, "aria-label": `broken: ${run.error}` } : {};
      cell.replaceChildren(el("span", { className: `state ${run.state}`, text: stateText(run), ...why }));
    } else if (column.key === "sweep" && run.sweep) {
      const link = el("a", { href: `/?view=sweeps&sweep=${encodeURIComponent(run.sweep.sweep_id)}`, text,
        title: `sweep ${run.sweep.sweep_id}` });
      link.addEventListener("click", (event) => {
        event.preventDefault();
        goToView("sweeps", { sweep: run.sweep.sweep_id });
      });
      cell.replaceChildren(link);
    } else {
      cell.textContent = text;
    }
  });
  row.tr.className = state.currentStatus && run.run_id === state.currentStatus.run_id ? "current" : "";
  return row.tr;
}

function stateText(run) {
  // "queued #1" for the run that starts next, and so on (queued runs start oldest first).
  if (run.handed_in_at) return `${run.state} · handed in`; // in a class
  if (run.state !== state.settings.states.queued || state.me) return run.state; // (a class's queue takes turns)
  const line = state.runs.filter((r) => r.state === state.settings.states.queued).map((r) => r.run_id).sort();
  return `queued #${line.indexOf(run.run_id) + 1}`;
}

// ------------------------------------------------------------------ comparison

function setCompare(ids) {
  // The runs compared (none: the table alone), at an address of the Runs view of their own.
  goToView("runs", { runs: ids.join(","), sort: urlParam("sort") });
}

function readUrl() {
  // ?runs= (compared), &ticked= (ticked, not compared yet) and &sort= from the address.
  state.compareIds = urlList("runs");
  state.selected = new Set([...state.compareIds, ...urlList("ticked")]);
  const sort = urlParam("sort") || "-started";
  const key = sort.replace(/^-/, "");
  if (runColumns().some((c) => c.key === key)) {
    state.sortKey = key;
    state.sortDir = sort.startsWith("-") ? -1 : 1;
  }
}

export function applyCompareFromUrl() {
  readUrl();
  renderHistory();
  refreshCurveRuns();
  pollNow();
}

function comparedRuns() {
  // In the order they were made (run ids sort by their start), whatever order the address lists them in.
  const byId = new Map(state.runs.map((r) => [r.run_id, r]));
  return [...state.compareIds].sort().map((id) => byId.get(id)).filter(Boolean);
}

const LABEL_PARTS = [ // what may tell compared runs apart, in the words of a legend
  ["lr", (r) => perModel(r, (m) => Number(m.learning_rate.toPrecision(4)))], ["batch", (r) => perModel(r, (m) => m.batch_size)],
  ["", (r) => perModel(r, (m) => m.optimizer)], ["epochs", (r) => r.settings.epochs],
  ["seed", (r) => r.settings.seed], ["warm-up", (r) => r.settings.warmup], ["smoothing", (r) => r.settings.label_smoothing],
  ["", (r) => scheduleName(r.settings.lr_schedule)], ["images", (r) => r.settings.train_samples ?? "all"],
  ["", (r) => r.models.map((m) => `[${m.kernels.join(",")}]`).join(" ")], ["", (r) => r.precision],
];

function compareLabels(runs) {
  // Each run named by the settings that differ between the runs compared ("lr 0.004 · batch 128"),
  // else (or where two read the same) by when it started.
  const parts = LABEL_PARTS.filter(([, value]) => new Set(runs.map((r) => String(value(r)))).size > 1);
  const labels = runs.map((r) => parts.map(([word, value]) => (word ? `${word} ${value(r)}` : String(value(r)))).join(" · "));
  return runs.map((r, i) => {
    const time = r.started_at ? new Date(r.started_at * 1000).toLocaleTimeString() : r.run_id;
    return labels[i] && labels.indexOf(labels[i]) === labels.lastIndexOf(labels[i]) ? labels[i] : [labels[i], time].filter(Boolean).join(" · ");
  });
}

function bestRun(runs) {
  const scored = runs.filter((r) => r.best_test_accuracy !== null && r.best_test_accuracy !== undefined);
  return scored.length > 1 ? scored.reduce((a, b) => (b.best_test_accuracy > a.best_test_accuracy ? b : a)) : null;
}

const COMPARE_ROWS = [
  ["Models", (r) => r.models.map((m) => `${m.name} [${m.kernels.join(",")}]`).join("; ")],
  ["Optimizer", (r) => perModel(r, (m) => optimizerName(m.optimizer))],
  ["Learning rate", (r) => perModel(r, (m) => Number(m.learning_rate.toPrecision(4)))],
  ["Batch size", (r) => perModel(r, (m) => m.batch_size)],
  ["LR schedule", (r) => scheduleName(r.settings.lr_schedule)],
  ["Epochs", (r) => String(r.settings.epochs ?? "–")],
  ["Training images", (r) => (r.settings.train_samples ? r.settings.train_samples.toLocaleString("en-US") : "all")],
  ["Precision", (r) => r.precision || "–"],
  ["Device", (r) => r.device || "–"],
  ["Seed", (r) => String(r.settings.seed ?? "–")],
  ["Warm-up share", (r) => String(r.settings.warmup ?? "–")],
  ["Label smoothing", (r) => String(r.settings.label_smoothing ?? "–")],
  ["Best test accuracy", (r) => perModel(r, (m) => (m.best_test_accuracy === null ? null : pct(m.best_test_accuracy)))],
  ["Final test accuracy", (r) => perModel(r, (m) => (m.final_test_accuracy === null ? null : pct(m.final_test_accuracy)))],
  ["Duration", (r) => fmtSeconds(r.duration_seconds)],
  ["State", (r) => r.state],
];

function renderComparison() {
  const ids = state.compareIds;
  const runs = comparedRuns();
  $("compare-panel").hidden = ids.length === 0;
  $("curves-mode").textContent = ids.length ? `Comparing ${runs.length} run${runs.length === 1 ? "" : "s"}` : "";
  if (!ids.length) return;
  const missing = ids.filter((id) => !runs.some((r) => r.run_id === id));
  $("compare-missing").textContent = missing.length && state.runs.length ? `Not found (deleted?): ${missing.join(", ")}` : "";
  const labels = compareLabels(runs);
  const best = bestRun(runs);
  const head = el("tr", {}, el("th", { scope: "col", text: "Setting" }), ...runs.map((r, i) => el("th", { scope: "col",
    ...(r === best ? { className: "best" } : {}), text: `${labels[i]} (${r.run_id})${r === best ? " ★ best" : ""}` })));
  const body = el("tbody");
  for (const [name, value] of COMPARE_ROWS) {
    const values = runs.map(value);
    const differs = new Set(values).size > 1;
    const th = el("th", { scope: "row", text: name });
    if (differs) th.append(el("span", { className: "differs-mark", text: " (differs)" }));
    body.append(el("tr", differs ? { className: "differs" } : {}, th, ...values.map((v) => el("td", { text: v }))));
  }
  $("compare-settings").replaceChildren(el("table", { id: "compare-table" }, el("thead", {}, head), body));
}

function exploredRun() {
  // Explore charts the layers of the run it reads drawings with.
  const run = exploreRun();
  return run && run.models.length ? [{ runId: run.run_id, label: run.run_id, names: run.models.map((m) => m.name),
    colors: run.models.map((m, j) => modelColor(m, j)), epochs: run.settings.epochs }] : [];
}

export function refreshCurveRuns() {
  // The runs the curves show: in Explore, the run explored; else the compared ones, else the run
  // shown in the status panel.
  const status = state.currentStatus;
  if (currentView() === "explore") {
    setCurveRuns(exploredRun());
  } else if (state.compareIds.length) {
    const runs = comparedRuns();
    const labels = compareLabels(runs);
    const best = bestRun(runs);
    setCurveRuns(runs.map((r, i) => ({ runId: r.run_id, label: labels[i], names: r.models.map((m) => m.name),
      colors: r.models.map((m, j) => modelColor(m, j)), epochs: r.settings.epochs, best: r === best })));
  } else if (status && status.run_id) {
    const epochs = status.models.length ? status.models[0].epochs : 0;
    setCurveRuns([{ runId: status.run_id, label: status.run_id, names: status.models.map((m) => m.name),
      colors: status.models.map((m, j) => modelColor(m, j)), epochs }]);
  } else {
    setCurveRuns([]);
  }
  reserveLegends();
}

export function setupHistory() {
  $("compare-selected").addEventListener("click", () => {
    setCompare([...state.selected].sort());
  });
  $("stop-compare").addEventListener("click", () => setCompare([]));
  $("show-new-runs").addEventListener("click", listAll);
  $("import-run").addEventListener("click", () => $("import-file").click());
  $("import-file").addEventListener("change", () => { if ($("import-file").files.length) importRun($("import-file").files[0]); });
  renderHistory([]); // the empty table, before the address's ticks (no run is known yet to keep them)
  readUrl();
}
