// Helpers shared by the page's modules: DOM shortcuts, number formats and the JSON requests.

// The palette, as GET /config gives it (the server draws its pictures with the same colours):
// a colour per model, then more for the lines of compared runs. Filled by usePalette.
export const MODEL_COLORS = [];
export const RUN_PALETTE = [];

export function usePalette(colors) {
  MODEL_COLORS.splice(0, MODEL_COLORS.length, ...colors.models);
  RUN_PALETTE.splice(0, RUN_PALETTE.length, ...colors.models, ...colors.more);
}

export function modelColor(model, index) {
  // A model's own colour (its config's palette index, kept when models above it are removed), else
  // its position's (a run written before models had colours).
  return MODEL_COLORS[model && Number.isInteger(model.color) ? model.color : index % MODEL_COLORS.length];
}
export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function fmt(value, digits = 2, suffix = "") {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${suffix}`;
}

export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export async function getJSON(url) {
  // The parsed body, or an Error carrying the HTTP status and the server's message.
  const response = await fetch(url, { cache: "no-cache" });
  let body = null;
  let unreadable = null;
  try { body = await response.json(); } catch (err) { unreadable = err; } // not JSON, or cut off
  if (!response.ok || unreadable) { // an answer cut off (the server went down while it sent it) is no answer
    const error = new Error((body && body.error) || (response.ok ? `HTTP ${response.status}, the answer cut off (${unreadable.message})` : `HTTP ${response.status}`));
    error.status = response.status;
    throw error;
  }
  return body;
}

export async function postJSON(url, body) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  let data = {};
  try { data = await response.json(); } catch (_) { /* empty body */ }
  return { ok: response.ok, status: response.status, data };
}

export async function send(url, body) {
  // POST that never throws: a network failure is an answer too, shown to the user.
  try {
    return await postJSON(url, body);
  } catch (err) {
    return { ok: false, status: 0, offline: true, data: { error: "the server is not reachable; try again when it is back" } };
  }
}
