"""What a metric kind is: a name, where each row stands (model, epoch, step, time), its fields
with units, the moment it is produced, its producer, and its charts."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

PLACE = ("model", "epoch", "step", "time")  # every row says where it stands: model index, epoch
# (fractional during an epoch), the model's step, seconds of training since the run started
MOMENTS = ("window", "epoch_end")  # after a window of training steps (a curve point), or at an epoch end
SHAPES = ("number", "per_layer", "per_digit")  # a field holds one number, a list over the layers, or 10 numbers
CHART_FORMS = ("lines", "layer_lines", "heat_strip")  # a line per model; a line per layer of one model; a
# strip of cells per model (epochs down, digits 0-9 across)
# A chart spec: {"id", "title", "form", "fields"} and, as needed: "scale" (linear by default; "percent",
# "log", or "loss": linear or log by the user's choice, with the floor label smoothing sets), "smooth"
# (the smoothing slider applies), "points" (a marker at each value), "overlap" (lines that often
# coincide are dashed apart), "factor" (values shown multiplied), "field_labels" (a field's name in
# the legend when the chart has several), "dashed" (fields drawn dashed), "names" (for "layer_lines":
# the field that names each line), "detail" (how the training runs rather than what it learns: drawn
# in a "Details" disclosure, closed by default), "columns", "explain", "waiting", "missing" (for "heat_strip": the
# columns' headings, what the strip shows, what a model without rows yet or a run made before the
# kind existed says), "format" and "tick" (how a
# value reads in the legend and on the axis: one of the page's named formats).


@dataclass(frozen=True)
class Field:
    name: str
    unit: str  # "%", "images/s", "" (a plain number), "layer names"
    description: str
    shape: str = "number"  # one of SHAPES


@dataclass(frozen=True)
class Window:
    """The moment a curve window of one model ends: ``model`` (its ModelRun), its window's mean
    loss and accuracy (already checked to be finite)."""
    model: Any
    loss: float
    accuracy: float


@dataclass(frozen=True)
class EpochEnd:
    """One model's epoch end: ``val`` and ``test`` (Evaluations), the test confusion matrix
    (``matrix[true][predicted]``, counts)."""
    model: Any
    val: Any
    test: Any
    matrix: Any


@dataclass(frozen=True)
class MetricKind:
    name: str
    title: str  # what the kind is, in words
    moment: str  # one of MOMENTS
    fields: tuple[Field, ...]
    produce: Callable[[Any], dict | None] = field(compare=False)  # the moment -> {field: value}, or None
    charts: tuple[dict, ...] = ()  # declarative chart specs (see CHART_FORMS), drawn by the page
    order: int = 100  # its place among the kinds: rows' columns, the API's listing, the charts on the page
    panel: str = "curves"  # where on the page its charts go: "curves" (fetched at every poll),
    # "layers" (fetched while "Inside the network" is open), "classes" (per-digit accuracy)

    def __post_init__(self):
        assert self.moment in MOMENTS and all(f.shape in SHAPES for f in self.fields), self.name
        assert not set(PLACE) & {f.name for f in self.fields}, self.name
        assert all(chart["form"] in CHART_FORMS for chart in self.charts), self.name

    @property
    def columns(self) -> tuple[str, ...]:
        """A row's keys besides "kind": where it stands and its fields."""
        return PLACE[:3] + tuple(f.name for f in self.fields) + PLACE[3:]

    @property
    def tabular(self) -> bool:
        """Every field one number: the kind fits a CSV, a column a field."""
        return all(f.shape == "number" for f in self.fields)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "moment": self.moment, "panel": self.panel,
                "fields": [asdict(f) for f in self.fields], "charts": [dict(c, kind=self.name) for c in self.charts]}
