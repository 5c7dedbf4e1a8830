"""The renderer process's loop (renderer.serve): what it draws from the trainer's messages."""
import io
import pickle
import queue

from mnist_monitor.palette import MODEL_COLORS
from mnist_monitor.training import renderer
from mnist_monitor.training.renderer import CurvePoints, EpochImage


def test_a_backlog_is_drawn_once_with_the_newest_picture_of_each_kind():
    inbox = queue.Queue()
    for epoch in (1, 2, 3):
        inbox.put(CurvePoints([{"kind": "train", "epoch": epoch}, {"kind": "eval", "epoch": epoch}]))
        inbox.put(EpochImage("confusion", 0, "confusion", (f"epoch {epoch}",)))
        inbox.put(EpochImage("confusion", 1, "confusion", (f"epoch {epoch}, model 2",)))
    inbox.put(None)
    rows, pictures, ended = renderer.next_batch(inbox)
    assert [r["epoch"] for r in rows] == [1, 1, 2, 2, 3, 3]  # every curve row, in order
    assert {key: m.args for key, m in pictures.items()} == {
        ("confusion", 0): ("epoch 3",), ("confusion", 1): ("epoch 3, model 2",)}
    assert ended and inbox.empty()


def test_the_renderer_draws_the_last_curves_and_pictures_then_ends(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setitem(renderer.DRAWERS, "confusion", lambda title: drawn.append(title) or b"png")
    monkeypatch.setattr(renderer, "render_curves", lambda names, train, evals, epochs, colors: drawn.append(
        (len(train), len(evals), colors)) or b"png")
    stream = io.BytesIO()
    for message in (CurvePoints([{"kind": "train"}, {"kind": "eval"}]), EpochImage("confusion", 0, "confusion", ("a",)),
                    CurvePoints([{"kind": "train"}])):
        pickle.dump(message, stream)
    stream.seek(0)
    (tmp_path / "run").mkdir()
    renderer.serve(str(tmp_path / "run"), {"names": ["Model 1"], "colors": [2]}, 2, stream)
    curves = [d for d in drawn if isinstance(d, tuple)]
    assert curves[-1] == (2, 1, [2]) and "a" in drawn  # the train row after the last evaluation is drawn too
    assert (tmp_path / "run" / "curves.png").read_bytes() == b"png"


def test_curves_png_is_drawn_as_the_page_shows_it_with_nothing_cut_off():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    train = [{"model": m, "epoch": e / 4, "loss": 2.3 / (1 + e), "accuracy": 50 + 10 * e} for m in (0, 1) for e in range(1, 9)]
    evals = [{"model": m, "epoch": e, "val_accuracy": 90 + e, "test_accuracy": 89 + e} for m in (0, 1) for e in (1, 2)]
    fig = renderer.curves_figure(["Model 1", "small"], train, evals, epochs=2)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # places the labels
    drawing = canvas.get_renderer()
    loss, accuracy, evaluation = fig.axes
    assert loss.get_yscale() == "linear" and "linear" in loss.get_ylabel()  # as the page starts, and says so
    for ax in (loss, accuracy):  # each training panel names its lines
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Model 1", "small"]
    assert evaluation.get_xlim()[1] > 2  # the last epoch's markers are drawn whole
    width, height = fig.bbox.width, fig.bbox.height
    for ax in fig.axes:  # no axis label runs off the picture
        for label in (ax.yaxis.label, ax.xaxis.label):
            box = label.get_window_extent(drawing)
            assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, label.get_text()
        for tick in ax.get_yticklabels():
            assert tick.get_window_extent(drawing).x0 >= 0


def test_each_model_is_drawn_in_its_own_colour_not_its_position():
    train = [{"model": m, "epoch": 0.5, "loss": 1.0, "accuracy": 50.0} for m in (0, 1)]
    fig = renderer.curves_figure(["Model 2", "Model 3"], train, [], epochs=1, colors=[1, 2])  # Model 1 was removed
    lines = fig.axes[0].get_lines()
    assert [line.get_color() for line in lines] == [MODEL_COLORS[1], MODEL_COLORS[2]]
