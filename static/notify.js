// Polite announcements for screen readers, and the desktop notification at a run's end.

import { $ } from "./common.js";

export function announce(message) {
  // Said politely by screen readers; only state changes and results, never every poll.
  $("announcer").textContent = message;
}

export function showNote(message) {
  // A visible note in the status panel, also said by screen readers, for a change of what is shown
  // that the user did not click for (the run shown was deleted); it stays until dismissed.
  $("status-note-text").textContent = message;
  $("status-note").hidden = !message;
}

export function notifyRunEnd(status, best) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try { new Notification(`Training ${status.state}`, { body: best || `run ${status.run_id}` }); } catch (_) { /* not allowed here */ }
}

export function setupNotifications() {
  // The button asks once; what the browser answered is said where the button was, since a
  // refusal (or a browser that asks nothing and refuses) would otherwise leave no trace.
  const button = $("notify");
  if (!("Notification" in window) || Notification.permission !== "default") { button.hidden = true; return; }
  button.hidden = false;
  button.addEventListener("click", async () => {
    let answer = "denied";
    try { answer = await Notification.requestPermission(); } catch (_) { /* an old browser: treated as a refusal */ }
    button.hidden = true;
    $("notify-note").textContent = answer === "granted"
      ? "Notifications on: one comes when a run ends."
      : "Notifications are blocked for this page: allow them in the browser's site settings (the icon left of the address) to get one when a run ends.";
    $("notify-note").hidden = false;
  });
}
