// The pictures of each model, refreshed at every epoch end: sample predictions, misclassified
// digits, the confusion matrix (also as a table) and the first layer's filters.

import { $, el, getJSON, modelColor } from "./common.js";
import { pickDigit } from "./draw.js";
import { state } from "./state.js";

const IMAGE_KINDS = { samples: "sample predictions", errors: "misclassified digits", confusion: "confusion matrix",
  filters: "filters of conv 1" };
const shownImages = {}; // element id -> URL shown (URLs carry a version, so equal URL = same image)

function modelColumn(index) {
  const id = `model-column-${index}`;
  let column = document.getElementById(id);
  if (!column) {
    column = el("div", { id, className: "model-column" });
    const after = [...$("per-model").children].find((c) => Number(c.id.split("-").pop()) > index);
    $("per-model").insertBefore(column, after || null);
  }
  return column;
}

function figureFor(container, kind, id) {
  // A figure whose space is reserved (from the picture's known size) before the picture arrives.
  let fig = document.getElementById(id);
  if (!fig) {
    const [width, height] = state.settings.image_sizes[kind];
    const frame = el("div", { className: "frame" });
    frame.style.aspectRatio = `${width} / ${height}`;
    frame.style.maxWidth = `${width}px`; // never drawn larger than rendered
    frame.style.setProperty("--natural-width", `${width}px`); // a phone shows it at this size, swiped sideways
    fig = el("figure", { id }, el("figcaption", {}, el("span"), el("span", { className: "phone-only muted", text: " (swipe sideways to see all)" })), frame);
    container.append(fig);
  }
  return fig;
}

function setImage(container, kind, index, model, url) {
  const id = `img-${kind}-${index}`;
  const fig = figureFor(container, kind, id);
  const caption = `${model.name}: ${IMAGE_KINDS[kind]}`;
  fig.querySelector("figcaption span").textContent = caption;
  fig.style.borderTopColor = modelColor(model, index);
  const frame = fig.querySelector(".frame");
  if (!url) {
    frame.replaceChildren(el("p", { className: "muted placeholder", text: "appears at the end of the first epoch" }));
    delete shownImages[id];
    keyboardScroll(fig); // a phone keeps the picture's room, wider than the figure
  } else if (shownImages[id] !== url) { // only fetch a picture when its version changed
    const img = el("img", { src: url, alt: `${caption}, epoch ${model.epoch}` });
    if (kind === "samples" || kind === "errors") {
      img.className = "pickable";
      img.title = "click a digit to see what each layer makes of it";
      img.addEventListener("click", (event) => pickDigit(event, img, kind, index));
    }
    img.addEventListener("load", () => keyboardScroll(fig));
    img.addEventListener("error", () => keyboardScroll(fig)); // its alt text may be wider than the figure too
    frame.replaceChildren(img);
    shownImages[id] = url;
  }
}

function keyboardScroll(fig) {
  // A picture wider than its figure (a phone shows it at its own size) is scrolled sideways: the
  // figure then takes the keyboard focus, so arrow keys scroll it too.
  if (fig.scrollWidth > fig.clientWidth + 1) fig.setAttribute("tabindex", "0"); else fig.removeAttribute("tabindex");
}

export function setupImages() {
  window.addEventListener("resize", () => document.querySelectorAll(".model-column figure").forEach(keyboardScroll));
}

export function renderImages(status) {
  // The run these pictures are of, named: the one the status above shows (runs compared have their
  // curves in the Runs view; each run's pictures are in its own Train view, "open" in the table).
  $("pictures-run").textContent = status.run_id ? `Pictures of run ${status.run_id}, the run shown in the status above.` : "";
  const images = status.images || {};
  $("curves-figure").classList.toggle("unavailable", !images.curves); // its room kept: the controls' lines never change
  if (images.curves) $("curves-figure").href = images.curves;
  const models = status.models || [];
  for (let i = 0; i < state.settings.limits.models[1]; i++) {
    if (!models[i]) { const old = document.getElementById(`model-column-${i}`); if (old) old.remove(); continue; }
    const column = modelColumn(i);
    for (const kind of Object.keys(IMAGE_KINDS)) setImage(column, kind, i, models[i], (models[i].images || {})[kind]);
    renderConfusionTable(column, i, models[i]);
  }
}

function confusionTable(data) {
  const head = el("tr", {}, el("th", { scope: "col", text: "true \\ predicted" }), ...data.matrix.map((_, p) => el("th", { scope: "col", text: String(p) })));
  const rows = data.matrix.map((row, t) => el("tr", {}, el("th", { scope: "row", text: String(t) }), ...row.map((n) => el("td", { text: String(n) }))));
  return el("table", {}, el("caption", { text: "rows: true digit; columns: predicted digit" }), el("thead", {}, head), el("tbody", {}, ...rows));
}

async function renderConfusionTable(column, index, model) {
  // The confusion matrix's numbers as a table, for screen readers and for reading exact counts.
  const id = `confusion-table-${index}`;
  let details = document.getElementById(id);
  if (!details) {
    details = el("details", { id, className: "confusion-table" }, el("summary", { text: `${model.name}: confusion matrix as a table` }), el("div"));
    column.append(details);
  }
  if (!model.confusion || details.dataset.url === model.confusion) return;
  details.dataset.url = model.confusion;
  try {
    const data = await getJSON(model.confusion);
    state.misclassified[index] = data.errors || [];
    details.querySelector("summary").textContent = `${data.model}: confusion matrix as a table (epoch ${data.epoch})`;
    details.querySelector("div").replaceChildren(el("div", { className: "table-scroll" }, confusionTable(data)));
  } catch (_) {
    details.dataset.url = ""; // try again at the next poll
  }
}
