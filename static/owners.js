// Whose a run or a sweep is, in a class (python server.py --class): a student's page offers what
// changes a run (stop, resume, cancel, delete, star, note) only on their own; the teacher's page,
// and every page without a class, on every run.

import { state } from "./state.js";

export function mayAct(owner) {
  return !state.me || state.me.role !== "student" || !owner || owner.id === state.me.id;
}

export function ownerText(owner) {
  // "you" for the reader's own, else the owner's name ("teacher" for the teacher's runs; "a
  // classmate" where the teacher made the class anonymous: the server sends no name then).
  if (!owner) return "";
  return state.me && owner.id === state.me.id ? "you" : owner.name || "a classmate";
}
