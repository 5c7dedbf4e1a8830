"use strict";
// The run table (settings and results of every run, sortable), the comparison of selected runs
// (in the URL: /?runs=<id>,<id>) and "re-run with these settings".

const history_ = {
  runs: [], // the last GET /runs answer
  sortKey: "started",
  sortDir: -1, // -1: descending
  selected: new Set(),
  compareIds: [], // runs compared, from the URL
};

function perModel(run, pick) {
  // One value if every model has the same, else each model's, in model order.
  const values = run.models.map(pick).map((v) => (v === null || v === undefined ? "–" : String(v)));
  return new Set(values).size <= 1 ? (values[0] || "–") : values.join(" / ");
}

function pct(value) {
  return fmt(value, 2, " %");
}

const RUN_COLUMNS = [
  { key: "started", label: "Started", value: (r) => r.started_at, text: (r) => (r.started_at ? new Date(r.started_at * 1000).toLocaleString() : "–") },
  { key: "models", label: "Models", value: (r) => r.models.map((m) => m.name).join(), text: (r) => r.models.map((m) => `${m.name} [${m.kernels.join(",")}]`).join("; ") },
  { key: "optimizer", label: "Optimizer", value: (r) => perModel(r, (m) => m.optimizer), text: (r) => perModel(r, (m) => m.optimizer) },
  { key: "lr", label: "Learning rate", value: (r) => Math.max(...r.models.map((m) => m.learning_rate)), text: (r) => perModel(r, (m) => m.learning_rate) },
  { key: "batch", label: "Batch", value: (r) => Math.max(...r.models.map((m) => m.batch_size)), text: (r) => perModel(r, (m) => m.batch_size) },
  { key: "schedule", label: "LR schedule", value: (r) => r.settings.lr_schedule, text: (r) => scheduleName(r.settings.lr_schedule) },
  { key: "epochs", label: "Epochs", value: (r) => r.settings.epochs, text: (r) => String(r.settings.epochs ?? "–") },
  { key: "images", label: "Training images", value: (r) => r.settings.train_samples ?? Infinity, text: (r) => (r.settings.train_samples ? r.settings.train_samples.toLocaleString("en-US") : "all") },
  { key: "precision", label: "Precision", value: (r) => r.precision, text: (r) => r.precision || "–" },
  { key: "device", label: "Device", value: (r) => r.device, text: (r) => r.device || "–" },
  { key: "best", label: "Best test accuracy", value: (r) => r.best_test_accuracy ?? -1, text: (r) => perModel(r, (m) => (m.best_test_accuracy === null ? null : m.best_test_accuracy.toFixed(2))) },
  { key: "final", label: "Final test accuracy", value: (r) => Math.max(-1, ...r.models.map((m) => m.final_test_accuracy ?? -1)), text: (r) => perModel(r, (m) => (m.final_test_accuracy === null ? null : m.final_test_accuracy.toFixed(2))) },
  { key: "duration", label: "Duration", value: (r) => r.duration_seconds ?? -1, text: (r) => fmtSeconds(r.duration_seconds) },
  { key: "state", label: "State", value: (r) => r.state, text: (r) => r.state },
  { key: "note", label: "Note", value: (r) => r.note || "", text: (r) => r.note || "" },
];

function scheduleName(value) {
  return { onecycle: "one-cycle", none: "constant" }[value] || value || "–";
}

function sortedRuns() {
  const column = RUN_COLUMNS.find((c) => c.key === history_.sortKey);
  return [...history_.runs].sort((a, b) => {
    const x = column.value(a);
    const y = column.value(b);
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return order * history_.sortDir || (a.run_id < b.run_id ? 1 : -1);
  });
}

function renderHistoryHead() {
  const row = el("tr", {}, el("th", { text: "Compare" }), el("th", { text: "Actions" }));
  for (const column of RUN_COLUMNS) {
    const button = el("button", { type: "button", className: "sort", text: column.label });
    button.addEventListener("click", () => {
      history_.sortDir = history_.sortKey === column.key ? -history_.sortDir : -1;
      history_.sortKey = column.key;
      renderHistory();
    });
    const sorted = history_.sortKey === column.key ? (history_.sortDir < 0 ? "descending" : "ascending") : "none";
    row.append(el("th", { "aria-sort": sorted, scope: "col" }, button));
  }
  $("runs-head").replaceChildren(row);
}

function renderHistory(runs = history_.runs) {
  history_.runs = runs;
  const known = new Set(runs.map((r) => r.run_id));
  for (const id of history_.selected) if (!known.has(id)) history_.selected.delete(id);
  renderHistoryHead();
  const body = $("runs-rows");
  body.replaceChildren();
  if (!runs.length) body.append(el("tr", {}, el("td", { colspan: String(RUN_COLUMNS.length + 2), className: "muted", text: "no runs yet" })));
  for (const run of sortedRuns()) body.append(historyRow(run));
  const queued = runs.filter((r) => r.state === SETTINGS.states.queued).length;
  $("queue-count").textContent = queued ? `${queued} run${queued === 1 ? "" : "s"} queued (see the run history): the next starts when the active run ends or is stopped` : "";
  $("compare-selected").disabled = history_.selected.size < 2;
  $("compare-selected").textContent = `Compare selected (${history_.selected.size})`;
  renderComparison();
}

function historyRow(run) {
  const label = `run ${run.run_id}`;
  const box = el("input", { type: "checkbox", "aria-label": `compare ${label}` });
  box.checked = history_.selected.has(run.run_id);
  box.addEventListener("change", () => {
    if (box.checked) history_.selected.add(run.run_id); else history_.selected.delete(run.run_id);
    $("compare-selected").disabled = history_.selected.size < 2;
    $("compare-selected").textContent = `Compare selected (${history_.selected.size})`;
  });
  const open = el("button", { type: "button", text: "open", "aria-label": `open ${label}` });
  open.addEventListener("click", () => openRun(run.run_id));
  const rerun = el("button", { type: "button", text: "re-run", "aria-label": `re-run ${label} with its settings`, title: "fill the form with this run's settings" });
  rerun.addEventListener("click", () => rerunSettings(run.run_id));
  const star = el("button", { type: "button", className: "star", text: run.starred ? "★" : "☆", "aria-pressed": String(run.starred),
    "aria-label": `star ${label}`, title: "starred runs are never removed by --keep-runs" });
  star.addEventListener("click", () => changeRun(run.run_id, { starred: !run.starred }));
  const note = el("button", { type: "button", text: "note", "aria-label": `write a note on ${label}` });
  note.addEventListener("click", () => {
    const text = window.prompt(`A short note on run ${run.run_id} (at most 200 characters):`, run.note || "");
    if (text !== null) changeRun(run.run_id, { note: text.slice(0, 200) });
  });
  const actions = el("td", { className: "actions" }, star, open, rerun, note);
  if (run.resumable) {
    const busy = history_.runs.some((r) => SETTINGS.states.active.includes(r.state));
    const resume = el("button", { type: "button", className: "resume", text: "resume", "aria-label": `resume ${label}`,
      title: busy ? "a run is training: resume this one when it has ended" : "go on from the last epoch-end checkpoint, in this same run" });
    resume.disabled = busy;
    resume.addEventListener("click", () => resumeRun(run.run_id));
    actions.append(resume);
  }
  if (run.state === SETTINGS.states.queued) {
    const cancel = el("button", { type: "button", className: "delete", text: "cancel", "aria-label": `cancel queued ${label}`,
      title: "take this run out of the queue" });
    cancel.addEventListener("click", () => runAction(run.run_id, "cancel", `Queued run ${run.run_id} cancelled.`));
    actions.append(cancel);
  } else {
    const remove = el("button", { type: "button", className: "delete", text: "delete", "aria-label": `delete ${label}` });
    remove.disabled = SETTINGS.states.active.includes(run.state);
    remove.addEventListener("click", () => deleteRun(run.run_id));
    actions.append(remove);
  }
  const tr = el("tr", { "data-run-id": run.run_id }, el("td", {}, box), actions);
  for (const column of RUN_COLUMNS) {
    const cell = el("td", { text: column.text(run) });
    if (column.key === "state") cell.replaceChildren(el("span", { className: `state ${run.state}`, text: stateText(run) }));
    tr.append(cell);
  }
  if (currentStatus && run.run_id === currentStatus.run_id) tr.className = "current";
  return tr;
}

async function changeRun(runId, changes) {
  const result = await send(`/runs/${encodeURIComponent(runId)}/meta`, changes);
  if (!result.ok) showHistoryError(result.data.error || `HTTP ${result.status}`);
  pollNow();
}

function stateText(run) {
  // "queued #1" for the run that starts next, and so on (queued runs start oldest first).
  if (run.state !== SETTINGS.states.queued) return run.state;
  const line = history_.runs.filter((r) => r.state === SETTINGS.states.queued).map((r) => r.run_id).sort();
  return `queued #${line.indexOf(run.run_id) + 1}`;
}

async function runAction(runId, action, said, showError = showHistoryError) {
  // POST /runs/<id>/<action> (resume, cancel); the answer's error, if any, shown by ``showError``.
  const result = await send(`/runs/${encodeURIComponent(runId)}/${action}`, {});
  showError(result.ok ? "" : result.data.error || `HTTP ${result.status}`);
  if (result.ok) announce(said);
  pollNow();
  return result.ok;
}

async function resumeRun(runId, showError = showHistoryError) {
  if (await runAction(runId, "resume", `Run ${runId} resumed from its last epoch-end checkpoint.`, showError)) {
    viewedRunId = null; // follow it live
    $("status-panel").scrollIntoView({ behavior: "smooth", block: "start" });
  }
}

async function deleteRun(runId) {
  if (!window.confirm(`Delete run ${runId} and all its files (metrics, pictures, checkpoints)? This cannot be undone.`)) return;
  let message = "";
  try {
    const response = await fetch(`/runs/${encodeURIComponent(runId)}`, { method: "DELETE" });
    if (!response.ok) message = (await response.json()).error || `HTTP ${response.status}`;
  } catch (err) {
    message = "the server is not reachable; try again when it is back";
  }
  showHistoryError(message);
  if (!message) announce(`Run ${runId} deleted.`);
  pollNow();
}

function showHistoryError(message) {
  $("history-error").textContent = message;
  $("history-error").hidden = !message;
}

async function rerunSettings(runId) {
  try {
    fillForm(await getJSON(`/runs/${encodeURIComponent(runId)}/config`));
    showFormError("");
    $("setup").scrollIntoView({ behavior: "smooth", block: "start" });
    announce(`Form filled with the settings of run ${runId}`);
  } catch (err) {
    showFormError(`could not load the settings of run ${runId}: ${err.message}`);
  }
}

// ------------------------------------------------------------------ comparison

function readCompareIds() {
  const value = new URLSearchParams(window.location.search).get("runs");
  return value ? value.split(",").map((s) => s.trim()).filter(Boolean) : [];
}

function setCompare(ids) {
  const url = ids.length ? `/?runs=${ids.map(encodeURIComponent).join(",")}` : "/";
  window.history.pushState({}, "", url);
  applyCompareFromUrl();
}

function applyCompareFromUrl() {
  history_.compareIds = readCompareIds();
  history_.selected = new Set(history_.compareIds); // the compared runs are the ticked ones
  renderComparison();
  refreshCurveRuns();
  pollNow();
}

function comparedRuns() {
  const byId = new Map(history_.runs.map((r) => [r.run_id, r]));
  return history_.compareIds.map((id) => byId.get(id)).filter(Boolean);
}

function runLabel(run, index) {
  const time = run.started_at ? new Date(run.started_at * 1000).toLocaleTimeString() : run.run_id;
  return `R${index + 1} ${time}`;
}

const COMPARE_ROWS = [
  ["Models", (r) => r.models.map((m) => `${m.name} [${m.kernels.join(",")}]`).join("; ")],
  ["Optimizer", (r) => perModel(r, (m) => m.optimizer)],
  ["Learning rate", (r) => perModel(r, (m) => m.learning_rate)],
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
  const ids = history_.compareIds;
  const runs = comparedRuns();
  $("compare-panel").hidden = ids.length === 0;
  $("curves-mode").textContent = ids.length ? `Comparing ${runs.length} run${runs.length === 1 ? "" : "s"}` : "";
  if (!ids.length) return;
  const missing = ids.filter((id) => !runs.some((r) => r.run_id === id));
  $("compare-missing").textContent = missing.length && history_.runs.length ? `Not found (deleted?): ${missing.join(", ")}` : "";
  const head = el("tr", {}, el("th", { scope: "col", text: "Setting" }), ...runs.map((r, i) => el("th", { scope: "col", text: `${runLabel(r, i)} (${r.run_id})` })));
  const table = el("table", { id: "compare-table" }, el("thead", {}, head));
  const body = el("tbody");
  for (const [name, value] of COMPARE_ROWS) {
    const values = runs.map(value);
    const differs = new Set(values).size > 1;
    const th = el("th", { scope: "row", text: name });
    if (differs) th.append(el("span", { className: "differs-mark", text: " (differs)" }));
    const tr = el("tr", differs ? { className: "differs" } : {}, th, ...values.map((v) => el("td", { text: v })));
    body.append(tr);
  }
  table.append(body);
  $("compare-settings").replaceChildren(table);
}

function setupHistory() {
  $("compare-selected").addEventListener("click", () => {
    const order = sortedRuns().map((r) => r.run_id).filter((id) => history_.selected.has(id));
    setCompare(order);
    $("charts").scrollIntoView({ behavior: "smooth", block: "start" });
  });
  $("stop-compare").addEventListener("click", () => setCompare([]));
  window.addEventListener("popstate", applyCompareFromUrl);
  history_.compareIds = readCompareIds();
  history_.selected = new Set(history_.compareIds);
  renderHistory([]);
}
