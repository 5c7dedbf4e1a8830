// A class on one server (python server.py --class): a browser without an identity joins with the
// class code and a name, and is shown its personal link once; a personal link (/?token=) opened in
// a browser that is someone else asks "continue as ...?" before it replaces them; the header says
// who is signed in; the teacher's Class view shows the code, opens and closes joining, shares the
// runs or not, and renames, removes or makes a new link for a student.

import { $, el } from "./common.js";
import { state } from "./state.js";

async function request(method, url, body, token = null) {
  // Any method with a JSON body; never throws: {ok, status, data}.
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-cache" });
    let data = {};
    try { data = await response.json(); } catch (_) { /* no body */ }
    return { ok: response.ok, status: response.status, data };
  } catch (err) {
    return { ok: false, status: 0, data: { error: "the server is not reachable; try again when it is back" } };
  }
}

async function memberOf(token) {
  // Who a token is (a personal link's), or who this browser is (token null); null if nobody.
  const answer = await request("GET", "/class/me", undefined, token);
  return answer.ok ? answer.data : null;
}

async function signInFromLink(token, current) {
  // A personal link opened: this browser becomes its student, after asking when it is someone
  // else (``current``: who it is now, or null). What to say, if anything.
  const linked = await memberOf(token);
  if (!linked) return "That personal link does not work any more (your teacher made a new one, or removed it): ask your teacher for a new link.";
  if (current && current.id === linked.id) return "";
  if (current && !window.confirm(`This browser is signed in as ${current.name}. Continue as ${linked.name} instead?`)) return "";
  const answer = await request("POST", "/class/signin", {}, token);
  return answer.ok ? "" : answer.data.error || `could not sign in (HTTP ${answer.status})`;
}

export async function setupClass(settings, linkToken) {
  // Before anything asks the server (settings: GET /config's answer): true when this browser is a
  // member (the page goes on), false when it shows the join form instead. Without a class, true.
  if (!settings.class) return true;
  const problem = linkToken ? await signInFromLink(linkToken, settings.member) : "";
  const me = problem || !linkToken ? settings.member : await memberOf(null);
  if (!me) {
    showJoin(problem || (settings.token_refused ? "This browser's sign-in no longer works: your teacher made you a new personal link (open it), or removed you from the class. Or join again below." : ""));
    return false;
  }
  state.me = me;
  $("who-name").textContent = me.role === "teacher" ? "Signed in as the teacher" : `Signed in as ${me.name}`;
  $("who").hidden = false;
  $("board-nav").hidden = false; // every member's
  $("sign-out").addEventListener("click", signOut);
  if (problem) window.alert(problem);
  if (me.role === "teacher") setupTeacher();
  return true;
}

export async function refreshMe() {
  // The class's settings as they are now (the teacher may close hand-ins during the lesson): the
  // run table is drawn again when they changed.
  const answer = await request("GET", "/class/me");
  if (!answer.ok || !state.me) return;
  const changed = answer.data.hand_ins_open !== state.me.hand_ins_open;
  Object.assign(state.me, answer.data);
  if (changed) state.lastRunsText = "";
}

async function signOut() {
  const back = state.me.role === "teacher" ? "the teacher's link" : "your personal link (or a new one from your teacher)";
  if (!window.confirm(`Sign out of this browser? To come back you need ${back}.`)) return;
  await request("POST", "/class/signout", {});
  window.location.assign("/");
}

// ------------------------------------------------------------------ joining

function showJoin(problem) {
  for (const root of document.querySelectorAll("main [data-view]")) root.hidden = true;
  document.querySelector(".views-nav").hidden = true;
  $("join").hidden = false;
  showJoinError(problem);
  $("join-form").addEventListener("submit", join);
  $("copy-link").addEventListener("click", copyLink);
  $("joined-continue").addEventListener("click", () => window.location.assign("/"));
  $("join-code").focus();
}

function showJoinError(message, field = null) {
  $("join-error").textContent = message;
  $("join-error").hidden = !message;
  for (const id of ["join-code", "join-name"]) $(id).removeAttribute("aria-invalid");
  if (field) {
    $(`join-${field}`).setAttribute("aria-invalid", "true");
    $(`join-${field}`).focus();
  }
}

async function join(event) {
  event.preventDefault();
  const code = $("join-code").value.trim();
  const name = $("join-name").value.trim();
  if (!code) { showJoinError("Type the class code your teacher gave you.", "code"); return; }
  if (!name) { showJoinError("Type your name.", "name"); return; }
  $("join-button").disabled = true;
  const answer = await request("POST", "/class/join", { code, name });
  $("join-button").disabled = false;
  if (!answer.ok) {
    const field = answer.data.field === "name" || answer.status === 409 ? "name" : answer.data.field === "code" ? "code" : null;
    showJoinError(joinError(answer), field);
    return;
  }
  $("join-form").hidden = true;
  $("joined-name").textContent = answer.data.name;
  $("joined-link").value = `${window.location.origin}/?token=${encodeURIComponent(answer.data.token)}`;
  $("joined").hidden = false;
  $("joined-link").select();
}

function joinError(answer) {
  if (answer.status === 403 && answer.data.field === "code") return "That is not this class's code: check it with your teacher.";
  if (answer.status === 409) return `The name ${$("join-name").value.trim()} is taken in this class: add an initial, or choose another. If it is you (on another computer), open your personal link instead, or ask your teacher for a new one.`;
  if (answer.status === 403) return "Joining is closed: ask your teacher to open it.";
  if (answer.status === 429) return `Too many wrong codes from this network: wait ${answer.data.error.match(/\d+ s/) || "a minute"} and try again.`;
  return answer.data.error || `could not join (HTTP ${answer.status})`;
}

async function copyLink() {
  $("joined-link").select();
  try {
    await navigator.clipboard.writeText($("joined-link").value);
    $("copy-note").textContent = "copied";
  } catch (err) {
    $("copy-note").textContent = "select the link and copy it (Ctrl+C)";
  }
}

// ------------------------------------------------------------------ the teacher's Class view

function setupTeacher() {
  $("class-nav").hidden = false;
  $("class-address").textContent = `${window.location.origin}/`;
  for (const [id, key] of Object.entries(SWITCHES)) {
    $(id).addEventListener("change", () => changeClass({ [key]: $(id).checked }));
  }
  $("class-limits").addEventListener("submit", saveLimits);
}

const SWITCHES = { "class-joining": "joining_open", "class-share": "share_runs", "class-hand-ins": "hand_ins_open",
  "class-leaderboard": "leaderboard", "class-anonymous": "anonymous" };
const LIMIT_KEYS = ["active_runs", "queued_runs", "sweep_trials", "image_epochs", "disk_mb", "predictions_per_minute"];

async function saveLimits(event) {
  // The class's limits, as typed (an empty box: no limit).
  event.preventDefault();
  const limits = Object.fromEntries(LIMIT_KEYS.map((key) => [key, $(`limit-${key}`).value === "" ? null : Number($(`limit-${key}`).value)]));
  const answer = await request("PATCH", "/class", { limits });
  $("limits-note").textContent = answer.ok ? "saved" : "";
  showClassError(answer.ok ? "" : answer.data.error || `HTTP ${answer.status}`);
  await refreshClass(true);
}

function showClassError(message) {
  $("class-error").textContent = message;
  $("class-error").hidden = !message;
}

async function changeClass(changes) {
  const answer = await request("PATCH", "/class", changes);
  showClassError(answer.ok ? "" : answer.data.error || `HTTP ${answer.status}`);
  await refreshClass(true);
}

export async function refreshClass(force = false) {
  // GET /class, drawn again when it changed (the Class view polls it while it is shown).
  if (!state.me || state.me.role !== "teacher") return;
  const answer = await request("GET", "/class");
  const board = await request("GET", "/class/board");
  if (!answer.ok || !board.ok) { showClassError((answer.ok ? board : answer).data.error || "the class cannot be read"); return; }
  const text = JSON.stringify([answer.data, board.data]);
  if (!force && text === state.classText) return;
  state.classText = text;
  const klass = answer.data;
  $("class-code").textContent = klass.code;
  for (const [id, key] of Object.entries(SWITCHES)) $(id).checked = klass[key];
  for (const key of LIMIT_KEYS) {
    if (document.activeElement !== $(`limit-${key}`)) $(`limit-${key}`).value = klass.limits[key] ?? "";
  }
  const onBoard = Object.fromEntries(board.data.students.map((s) => [s.id, s]));
  const rows = klass.students.map((s) => studentRow(s, onBoard[s.id]));
  $("class-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "9", className: "muted", text: "nobody has joined yet" }))]));
}

function runButton(runId, text, label) {
  const node = button(text, label, () => { window.location.assign(`/?view=train&run=${encodeURIComponent(runId)}`); });
  node.title = `run ${runId}`;
  return node;
}

function studentRow(student, board) {
  // A student: joined, runs; what trains and waits, their best, hand-ins, disk (GET /class/board); actions.
  const joined = new Date(student.joined_at * 1000).toLocaleString(); // a class goes on for days
  const name = student.removed ? `${student.name} (removed)` : student.name;
  const actions = el("td", { className: "actions" });
  const own = Object.entries(student.limits || {}).map(([k, v]) => `${k.replace(/_/g, " ")} ${v ?? "none"}`).join(", ");
  const cells = [el("td", { text: own ? `${name} (own limits: ${own})` : name }), el("td", { text: joined }),
    el("td", { text: String(student.runs) })];
  if (board) {
    const stops = board.training.map((id) => button("stop", `stop the run of ${student.name}`, async () => {
      if (!window.confirm(`Stop ${student.name}'s run ${id}? It can be resumed from its last epoch end, if it has finished one.`)) return;
      const answer = await request("POST", `/runs/${encodeURIComponent(id)}/stop`, {});
      showClassError(answer.ok ? "" : answer.data.error || `HTTP ${answer.status}`);
      await refreshClass(true);
    }, "delete"));
    cells.push(el("td", {}, board.training.length ? `${board.training.length} ` : "–", ...stops),
      el("td", { text: String(board.queued) }),
      el("td", {}, board.best_run_id ? runButton(board.best_run_id, fmtPercent(board.best_test_accuracy), `open the best run of ${student.name}`) : "–"),
      el("td", {}, ...(board.hand_ins.length ? board.hand_ins.map((h) => runButton(h.run_id,
        `${fmtPercent(h.best_test_accuracy)} · ${new Date(h.handed_in_at * 1000).toLocaleTimeString()}`, `open the run ${student.name} handed in`)) : ["–"])),
      el("td", { text: `${board.disk_mb} MB` }));
  } else {
    cells.push(...[0, 1, 2, 3, 4].map(() => el("td", { text: "–" })));
  }
  if (!student.removed) {
    actions.append(
      button("rename", `rename ${student.name}`, () => renameStudent(student)),
      button("new link", `new link for ${student.name}`, () => newLink(student)),
      button("limits", `limits for ${student.name}`, () => studentLimits(student)),
      button("remove", `remove ${student.name}`, () => removeStudent(student), "delete"));
  }
  return el("tr", { className: student.removed ? "removed" : "" }, ...cells, actions);
}

function fmtPercent(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(2)} %`;
}

function button(text, label, onClick, className = "") {
  const node = el("button", { type: "button", text, "aria-label": label, className });
  node.addEventListener("click", onClick);
  return node;
}

async function renameStudent(student) {
  const name = window.prompt(`A new name for ${student.name}:`, student.name);
  if (name === null || name.trim() === student.name) return;
  const answer = await request("PATCH", `/class/students/${encodeURIComponent(student.id)}`, { name: name.trim() });
  showClassError(answer.ok ? "" : answer.data.error || `HTTP ${answer.status}`);
  await refreshClass(true);
}

async function studentLimits(student) {
  // A student's own limits over the class's, typed as "active_runs=2, queued_runs=5" ("none": no
  // limit; the class's value: back to the class's).
  const now = Object.entries(student.limits || {}).map(([k, v]) => `${k}=${v ?? "none"}`).join(", ");
  const text = window.prompt(`Limits for ${student.name} over the class's (${LIMIT_KEYS.join(", ")}), e.g. active_runs=2, queued_runs=5; none: no limit:`, now);
  if (text === null) return;
  const limits = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [key, value] = part.split("=").map((p) => p.trim());
    limits[key] = value === "none" ? null : Number(value);
  }
  const answer = await request("PATCH", `/class/students/${encodeURIComponent(student.id)}`, { limits });
  showClassError(answer.ok ? "" : answer.data.error || `HTTP ${answer.status}`);
  await refreshClass(true);
}

async function newLink(student) {
  if (!window.confirm(`Make a new personal link for ${student.name}? Their old link stops working at once, and every browser signed in with it is signed out (each says so).`)) return;
  const answer = await request("POST", `/class/students/${encodeURIComponent(student.id)}/link`, {});
  showClassError(answer.ok ? "" : answer.data.error || `HTTP ${answer.status}`);
  if (answer.ok) {
    const link = `${window.location.origin}/?token=${encodeURIComponent(answer.data.token)}`;
    const box = el("textarea", { readonly: "", rows: "2", className: "link-box", "aria-label": `new personal link for ${student.name}` });
    box.value = link;
    const copy = button("Copy", `copy the new link for ${answer.data.name}`, async () => {
      box.select();
      try { await navigator.clipboard.writeText(link); copy.textContent = "Copied"; } catch (err) { copy.textContent = "Select it and press Ctrl+C"; }
    });
    $("class-new-link").replaceChildren(el("span", { text: `New link for ${answer.data.name} (shown only now; the old one no longer works): ` }), box, " ", copy);
    $("class-new-link").hidden = false;
  }
  await refreshClass(true);
}

async function removeStudent(student) {
  if (!window.confirm(`Remove ${student.name} from the class? They can no longer sign in; their runs stay (still theirs).`)) return;
  const answer = await request("DELETE", `/class/students/${encodeURIComponent(student.id)}`);
  showClassError(answer.ok ? "" : answer.data.error || `HTTP ${answer.status}`);
  await refreshClass(true);
}
