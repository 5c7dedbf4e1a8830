// The class board (a class's view, for everyone): each student's best run with how it was set up,
// ranked, and who trains now. Names are left out where the teacher made the class anonymous (the
// server sends none); "you" marks the reader's own row.

import { $, el, fmt } from "./common.js";
import { openRun } from "./runactions.js";
import { state } from "./state.js";

function whoText(row) {
  if (row.you) return row.name ? `you (${row.name})` : "you";
  return row.name || "a classmate";
}

function modelsText(row) {
  // Each model's settings; ★ marks the one whose accuracy is the run's best.
  return row.models.map((m) => `${m.best_test_accuracy === row.best_test_accuracy && row.models.length > 1 ? "★ " : ""}${m.name} [${m.kernels.join(",")}] ${m.optimizer} lr ${Number(m.learning_rate.toPrecision(3))} batch ${m.batch_size}`).join("; ");
}

function leaderRow(row, rank) {
  const open = row.run_id ? el("button", { type: "button", text: "open", "aria-label": `open the run of ${whoText(row)}` }) : "";
  if (open) open.addEventListener("click", () => openRun(row.run_id));
  const images = row.settings.train_samples ? row.settings.train_samples.toLocaleString("en-US") : "all";
  return el("tr", { className: row.you ? "current" : "" }, el("td", { text: String(rank) }), el("td", { text: whoText(row) }),
    el("td", { text: fmt(row.best_test_accuracy, 2) }), el("td", { text: modelsText(row) }),
    el("td", { text: String(row.settings.epochs ?? "–") }), el("td", { text: images }), el("td", {}, open));
}

export function renderBoard(board) {
  const off = !board.leaderboard_on && state.me.role === "student";
  $("board-note").textContent = [off ? "The teacher has turned the leaderboard off." : "",
    board.anonymous ? "The class is anonymous: nobody sees another student's name." : ""].filter(Boolean).join(" ");
  $("leaderboard-part").hidden = off; // nothing to rank for students while it is off
  const rows = board.leaderboard.map((row, i) => leaderRow(row, i + 1));
  $("leaderboard-rows").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", className: "muted", text: off ? "–" : "No finished run with a test accuracy yet." }))]));
  $("board-training").textContent = board.training.length
    ? board.training.map((t) => `${whoText(t)} (${t.runs} run${t.runs === 1 ? "" : "s"})`).join(", ")
    : "Nobody is training now.";
}

export async function refreshBoard(force = false) {
  // GET /class/board, drawn again when it changed (while the Board view is shown, at every poll).
  const response = await fetch("/class/board", { cache: "no-cache" });
  if (!response.ok) return null;
  const text = await response.text();
  const board = JSON.parse(text);
  if (force || text !== state.boardText) {
    state.boardText = text;
    renderBoard(board);
  }
  return board;
}
