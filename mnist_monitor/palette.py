"""The colours of models and runs, defined once: the renderer draws with them and the page reads
them from ``GET /config``. No imports: the renderer process starts without torch."""

# One colour per model (a model config's ``color`` is an index here), the same in every chart,
# picture and card.
MODEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
# After the model colours, for the lines of compared runs (a comparison shows up to 10 colours).
MORE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
RIGHT, WRONG = "#1a7f37", "#cf222e"  # a digit predicted right or wrong


def color(index: int) -> str:
    return MODEL_COLORS[index % len(MODEL_COLORS)]
