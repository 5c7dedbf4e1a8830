// Model information: the parameter count beside each model row and the layer tables of the models
// in the form (GET /model_info, asked once per kernel list, after typing pauses).

import { $, el, getJSON, modelColor } from "./common.js";
import { isInt, limits, readKernels } from "./formcheck.js";

const INFO_DEBOUNCE_MS = 200; // wait for typing to pause before asking /model_info
const infoTimers = new WeakMap(); // model row -> its pending request
const infoCache = new Map(); // "32,64,64,64" -> /model_info answer

export function scheduleModelInfo(tr) {
  clearTimeout(infoTimers.get(tr));
  infoTimers.set(tr, setTimeout(() => updateModelInfo(tr), INFO_DEBOUNCE_MS));
}

async function fetchModelInfo(kernels) {
  const key = kernels.join(",");
  if (!infoCache.has(key)) infoCache.set(key, await getJSON(`/model_info?kernels=${encodeURIComponent(key)}`));
  return infoCache.get(key);
}

async function updateModelInfo(tr) {
  const kernels = readKernels(tr);
  const cell = tr.querySelector(".params");
  if (!kernels.every((k) => isInt(k, limits().kernels))) {
    cell.textContent = `kernels: ${limits().kernels[0]} to ${limits().kernels[1]}`;
    cell.classList.add("error");
    return;
  }
  try {
    const info = await fetchModelInfo(kernels);
    if (readKernels(tr).join(",") !== kernels.join(",")) return; // changed meanwhile
    cell.textContent = info.total_parameters.toLocaleString("en-US");
    cell.classList.remove("error");
    renderModelInfo();
  } catch (err) {
    cell.textContent = String(err.message || err);
    cell.classList.add("error");
  }
}

function layerTable(info) {
  const head = el("tr", {}, ...["Layer", "Weight shape", "Output shape", "Parameters"].map((h) => el("th", { scope: "col", text: h })));
  const body = el("tbody");
  for (const layer of info.layers) {
    body.append(el("tr", {}, el("td", { text: layer.type }), el("td", { text: layer.weight_shape ? layer.weight_shape.join("×") : "–" }),
      el("td", { text: layer.output_shape.join("×") }), el("td", { text: layer.parameters.toLocaleString("en-US") })));
  }
  return el("table", { className: "layers" }, el("thead", {}, head), body);
}

export async function renderModelInfo() {
  // The layers of the models in the form: what Start would train.
  const source = [...$("model-rows").children].map((tr) => ({ name: tr.querySelector(".name").value, kernels: readKernels(tr),
    color: Number(tr.dataset.color) }));
  const key = JSON.stringify(source);
  const box = $("model-info");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  const grid = el("div", { className: "model-info-grid" });
  for (const [i, m] of source.entries()) {
    if (!m.kernels.every((k) => isInt(k, limits().kernels))) continue;
    let info;
    try { info = await fetchModelInfo(m.kernels); } catch (_) { continue; }
    const heading = el("h3", { className: "model-heading", text: `${m.name}: ${info.total_parameters.toLocaleString("en-US")} parameters, ${(info.macs_per_image / 1e6).toFixed(1)} M multiply-adds per image` });
    heading.style.borderLeftColor = modelColor(m, i);
    grid.append(el("div", {}, heading, el("div", { className: "table-scroll" }, layerTable(info))));
  }
  if (box.dataset.key === key) box.replaceChildren(grid);
}
