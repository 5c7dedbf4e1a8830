// The polling chain: GET /training_status (or the shown past run) and GET /runs every 3 s, one
// request chain that never overlaps itself, the next poll only after the last answer; when the
// server is unreachable, the page says so, keeps trying and redraws everything once it is back.
// What an answer changes on the page is up to the handlers given to startPolling.

import { $, getJSON } from "./common.js";
import { showFormError } from "./form.js";
import { announce, showNote } from "./notify.js";
import { state } from "./state.js";
import { currentView, forgetRun, setUrl } from "./url.js";

const POLL_MS = 3000;
const chain = {
  handlers: null, // {showStatus, showRuns, afterPoll}, from startPolling
  timer: null,
  inFlight: false, // one request chain at a time: polls never overlap
  soon: false, // a poll was asked for while one was in flight
};

export function setConnection(message) {
  $("connection").textContent = message;
  $("connection").hidden = !message;
}

function parsed(response, text) {
  // The answer's JSON; one cut off (the server went down while it sent it) counts as no answer.
  try {
    return JSON.parse(text);
  } catch (err) {
    const error = new Error(`HTTP ${response.status}, the answer cut off (${err.message})`);
    error.status = response.status;
    throw error;
  }
}

async function fetchStatus() {
  const followed = state.followedRunId ? `?run=${encodeURIComponent(state.followedRunId)}` : "";
  const url = state.viewedRunId ? `/runs/${encodeURIComponent(state.viewedRunId)}` : `/training_status${followed}`;
  const response = await fetch(url, { cache: "no-cache" });
  checkMember(response);
  if ([403, 404].includes(response.status) && (state.viewedRunId || state.followedRunId)) { // deleted, or hidden
    const gone = state.viewedRunId || state.followedRunId;
    state.viewedRunId = state.followedRunId = null;
    state.followedByPage = false;
    if (currentView() === "train") setUrl({ run: null }, false);
    forgetRun(gone);
    state.lastStatusText = "";
    await fetchStatus();
    showNote(response.status === 404 ? `Run ${gone} no longer exists (deleted): showing the live run.`
      : `Run ${gone} is not yours, and the teacher no longer shares the runs of the class: showing your own.`);
    return;
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const text = await response.text();
  state.statusAt = Date.now(); // when the shown status was last known to be current
  if (text !== state.lastStatusText) { // unchanged: nothing to redraw
    const status = parsed(response, text);
    if (state.viewedRunId && state.settings.states.active.includes(status.state)) { // it trains: followed live
      state.followedRunId = state.viewedRunId;
      state.viewedRunId = null;
      state.followedByPage = false;
      await fetchStatus();
      return;
    }
    state.lastStatusText = text;
    chain.handlers.showStatus(status);
  }
}

function checkMember(response) {
  // In a class: the token this browser holds stopped working (a new link was made, or its student
  // removed), or another tab made the browser someone else: the page starts again as who it is now.
  if (!state.me) return;
  const [member, name] = (response.headers.get("X-Class-Member") || "").split(" ");
  if (member && state.me.role === "student" && decodeURIComponent(name) !== state.me.name) { // renamed by the teacher
    state.me.name = decodeURIComponent(name);
    $("who-name").textContent = `Signed in as ${state.me.name}`;
  }
  if (response.status === 401 || (member && member !== state.me.id)) {
    window.location.reload();
    const error = new Error("signed in as someone else: the page starts again");
    error.reloading = true; // nothing more is drawn meanwhile, and nothing said
    throw error;
  }
}

async function fetchRuns() {
  const response = await fetch("/runs", { cache: "no-cache" });
  checkMember(response);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const text = await response.text();
  if (text === state.lastRunsText) return;
  const body = parsed(response, text);
  state.lastRunsText = text;
  chain.handlers.showRuns(body);
}

function connectionBack() {
  if (!state.serverDown) return;
  state.serverDown = false;
  setConnection("");
  if (state.formErrorIsConnection) { showFormError(""); state.formErrorIsConnection = false; }
  announce("Connection to the server is back.");
}

function pollFailed(err) {
  if (err.reloading) return;
  if (!(err instanceof TypeError && /fetch/i.test(err.message)) && !err.status && !/^HTTP/.test(err.message)) {
    console.error(err); // the page's own fault, not the network's: say so, and keep polling
    setConnection(`The page hit an error (${err.message}); retrying every ${POLL_MS / 1000} s.`);
  } else {
    if (!state.serverDown) announce("The server is not reachable; retrying.");
    setConnection(`The server is not reachable (${err.message}); retrying every ${POLL_MS / 1000} s.`);
  }
  state.serverDown = true;
  state.lastStatusText = state.lastRunsText = ""; // redraw everything once it answers again
  if (chain.handlers.showDown) chain.handlers.showDown(); // what is shown is only the last known
}

async function poll() {
  chain.inFlight = true;
  try {
    await fetchStatus();
    await fetchRuns();
    await chain.handlers.afterPoll(); // after the status: the curves are never older than the numbers beside them
    connectionBack();
  } catch (err) {
    pollFailed(err);
  } finally {
    chain.inFlight = false;
  }
  const delay = chain.soon ? 0 : POLL_MS; // next poll only after this reply
  chain.soon = false;
  chain.timer = setTimeout(poll, delay);
}

export function pollNow() {
  // A poll at once (or right after the one in flight): something the user did changed the page.
  state.lastRunsText = "";
  if (!chain.handlers) return; // not polling yet: the first poll comes when it starts
  if (chain.inFlight) { chain.soon = true; return; }
  clearTimeout(chain.timer);
  poll();
}

export function startPolling(handlers) {
  // handlers: showStatus(status) for a changed status, showRuns(body) for a changed GET /runs
  // answer, afterPoll() (async) after both, at every poll, and showDown() at each failed poll.
  chain.handlers = handlers;
  poll();
}

export async function loadSettings() {
  // GET /config, retried until the server answers: the form cannot be built without its limits.
  for (;;) {
    try {
      return await getJSON("/config");
    } catch (err) {
      setConnection(`The server is not reachable (${err.message}); retrying every ${POLL_MS / 1000} s.`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
