// The words the page uses for the server's choice values, written once for the form, the status
// line and the run history.

export const OPTIMIZER_NAMES = {}; // the optimizers' labels, as GET /config gives them (useLabels)

export function useLabels(labels) {
  Object.assign(OPTIMIZER_NAMES, labels.optimizer);
}

export function optimizerName(value) {
  return OPTIMIZER_NAMES[value] || value || "–";
}
export const SCHEDULE_NAMES = { onecycle: "one-cycle", constant: "constant", none: "constant" }; // none: the old word, in runs from before
export const CHOICE_NAMES = { ...SCHEDULE_NAMES, auto: "auto", fp32: "fp32", bf16: "bf16" };

export function scheduleName(value) {
  return SCHEDULE_NAMES[value] || value || "–";
}
