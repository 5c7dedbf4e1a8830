// Polite announcements for screen readers, and the desktop notification at a run's end.

import { $ } from "./common.js";

export function announce(message) {
  // Said politely by screen readers; only state changes and results, never every poll.
  $("announcer").textContent = message;
}

export function notifyRunEnd(status, best) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try { new Notification(`Training ${status.state}`, { body: best || `run ${status.run_id}` }); } catch (_) { /* not allowed here */ }
}

export function setupNotifications() {
  const button = $("notify");
  if (!("Notification" in window) || Notification.permission !== "default") { button.hidden = true; return; }
  button.hidden = false;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = true;
  });
}
