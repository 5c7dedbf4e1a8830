"""Inside the network: what each layer computes for a digit, the filters, and how each layer learns."""
import base64
import io
import statistics

import pytest

import torch
from PIL import Image, PngImagePlugin

from helpers import POLL_WAIT_MS, QUICK, expect, show_view, start_run, tiny_config, wait_for, wait_run_end
from mnist_monitor.runstore.files import read_jsonl
from mnist_monitor.training.trainer import Trainer

LAYER_NAMES = ["conv 1", "conv 2", "conv 3", "conv 4", "dense", "output"]


def test_predict_with_layers_gives_every_layers_maps_as_pictures(client):
    start_run(client, dict(QUICK, models=[{"kernels": [4, 8, 8, 8]}, {"kernels": [2, 4, 4, 4], "name": "small"}]))
    wait_run_end(client)
    plain = client.post("/predict", json={"test_index": 3}).get_json()
    assert all("layers" not in p for p in plain["predictions"])  # the plain answer stays small
    body = client.post("/predict", json={"test_index": 3, "layers": True}).get_json()
    first, second = (p["layers"] for p in body["predictions"])
    assert [layer["name"] for layer in first] == [
        "conv 1 (after ReLU)", "conv 2 (after ReLU)", "after pooling 1", "conv 3 (after ReLU)",
        "conv 4 (after ReLU)", "after pooling 2", "dense layer (after ReLU)"]
    assert [layer["shape"] for layer in first] == [[4, 26, 26], [8, 24, 24], [8, 12, 12], [8, 10, 10], [8, 8, 8],
                                                   [8, 4, 4], [128]]
    assert second[0]["shape"] == [2, 26, 26] and all(layer["shown"] == layer["shape"][0] for layer in first)
    for layer in first + second:
        assert layer["image"].startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(layer["image"].split(",", 1)[1])))
        assert picture.format == "PNG" and picture.size[0] >= 26
    for bad in ("yes", 1, None):
        response = client.post("/predict", json={"test_index": 3, "layers": bad})
        assert response.status_code == 400 and response.get_json()["field"] == "layers"
    assert client.post("/predict", json={"image": "data:image/png;base64,xx", "layers": True}).status_code == 400


def test_wide_layers_show_at_most_64_maps_and_say_so():
    import torch

    from mnist_monitor.inference.layer_views import layer_views
    from model import MNISTNet

    views = layer_views(MNISTNet((100, 8, 8, 8)).eval(), torch.zeros(1, 1, 28, 28))
    assert views[0]["shape"] == [100, 26, 26] and views[0]["shown"] == 64


def test_each_curve_point_records_how_each_layer_learns(tmp_path, tiny_mnist):
    run_dir = tmp_path / "run"
    Trainer(tiny_config(epochs=1), tiny_mnist, run_dir, monitor=False).run()
    rows = read_jsonl(run_dir / "metrics.jsonl")
    train_points = [(r["model"], r["step"]) for r in rows if r["kind"] == "train"]
    layer_rows = [r for r in rows if r["kind"] == "layers"]
    assert [(r["model"], r["step"]) for r in layer_rows] == train_points  # one per curve point
    for r in layer_rows:
        assert r["layers"] == LAYER_NAMES
        assert all(v > 0 for v in r["weight_norm"] + r["grad_norm"] + r["update_ratio"])
        assert all(0 <= v <= 1 for v in r["dead_relu"][:5]) and r["dead_relu"][5] is None  # no ReLU after the output


def test_a_learning_rate_that_is_too_high_shows_in_the_update_ratios(tmp_path, tiny_mnist):
    def median_ratio(lr):
        run_dir = tmp_path / f"lr{lr}"
        config = tiny_config(epochs=2, learning_rate=lr, lr_schedule="constant", models=[{"kernels": [4, 8, 8, 8]}])
        Trainer(config, tiny_mnist, run_dir, monitor=False).run()
        return statistics.median(v for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "layers"
                                 for v in r["update_ratio"])

    assert median_ratio(0.05) > 5 * median_ratio(0.0005)  # 100 times the step: far more than 5 times the change


@pytest.mark.pictures
def test_the_filters_picture_and_the_layer_rows_are_served(client, app):
    run_id = start_run(client)
    status = wait_run_end(client)
    for m in status["models"]:
        assert client.get(m["images"]["filters"]).mimetype == "image/png"
    rows = client.get(f"/runs/{run_id}/metrics?kind=layers").get_json()
    assert rows["rows"] and {r["kind"] for r in rows["rows"]} == {"layers"}
    curves = client.get(f"/runs/{run_id}/metrics?kind=train,eval").get_json()
    assert curves["next"] == rows["next"] and {r["kind"] for r in curves["rows"]} == {"train", "eval"}
    assert client.get(f"/runs/{run_id}/metrics?kind=weights").status_code == 400
    csv_text = client.get(f"/runs/{run_id}/metrics.csv").get_data(as_text=True)
    assert "layers" not in csv_text and "grad_norm" not in csv_text  # the CSV keeps its one-number columns


def test_drawing_or_clicking_a_digit_shows_each_models_layers(page, server_factory, mnist_sample):
    server = server_factory(mnist_sample)
    code, _ = server.request("POST", "/start_training", {"epochs": 1, "batch_size": 128, "train_samples": 1024})
    assert code == 202
    page.goto(server.url)
    expect(page.locator("#state")).to_have_text("finished", timeout=POLL_WAIT_MS * 6)
    # draw a 3 (in Explore)
    show_view(page, "explore")
    box = page.locator("#canvas").bounding_box()
    points = [(0.3, 0.2), (0.7, 0.25), (0.45, 0.5), (0.7, 0.7), (0.3, 0.85)]
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=5)
    page.mouse.up()
    columns = page.locator("#layer-views > div")
    expect(columns).to_have_count(2, timeout=POLL_WAIT_MS)
    captions = columns.nth(0).locator("figcaption").all_text_contents()
    assert [c for c in captions if c.startswith("conv")] == [
        "conv 1 (after ReLU): 32×26×26", "conv 2 (after ReLU): 64×24×24", "conv 3 (after ReLU): 64×10×10",
        "conv 4 (after ReLU): 64×8×8"]
    assert columns.nth(0).locator("img").count() == 7
    assert all(img.evaluate("i => i.complete && i.naturalWidth > 0") for img in columns.nth(0).locator("img").all())
    expect(page.locator("#prediction-bars .bars")).to_have_count(2)  # and the 10 probabilities
    # click a misclassified test digit (in Train's pictures): Explore, the same views, for that digit
    show_view(page, "train")
    errors = page.locator("#img-errors-0 img")
    page.locator("#confusion-table-0").scroll_into_view_if_needed()
    wait_for(lambda: page.locator("#confusion-table-0 tbody tr").count() == 10, timeout=20, message="confusion numbers")
    first_error = server.request("GET", page.locator("#downloads a").first.get_attribute("href").replace(
        "metrics.csv", "files/confusion_m0.json"))[1]["errors"][0]  # 1,024 images: Model 1 still errs
    errors.scroll_into_view_if_needed()
    box = errors.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.06, box["y"] + box["height"] * 0.3)  # the first digit shown
    expect(page.locator("main [data-view=explore]")).to_be_visible()
    expect(page.locator("#prediction-bars")).to_contain_text(f"Test digit {first_error}:", timeout=POLL_WAIT_MS)
    expect(columns.nth(0).locator("figcaption").first).to_have_text("conv 1 (after ReLU): 32×26×26")
    # how each layer learns: one line per layer, with what to look for beside it
    wait_for(lambda: int(page.locator("#chart-layer-update").get_attribute("data-points")) > 0, timeout=20,
             message="layer charts")
    expect(page.locator("#chart-layer-update .u-legend")).to_contain_text("conv 1")
    expect(page.locator("#inside .explain").first).to_contain_text("a learning rate that is too high")
    assert page.console_errors == []


def test_predictions_say_which_epochs_weights_answer_and_show_the_input(client):
    start_run(client, dict(QUICK, epochs=2))
    wait_run_end(client)
    body = client.post("/predict", json={"test_index": 4, "layers": True}).get_json()
    assert [p["epoch"] for p in body["predictions"]] == [2, 2]
    assert body["input_image"].startswith("data:image/png;base64,")
    assert "input_image" not in client.post("/predict", json={"test_index": 4}).get_json()


def test_checkpoint_cache_keeps_a_few_models_and_forgets_deleted_runs(tmp_path):
    from model import MNISTNet
    from mnist_monitor.inference.predict import CheckpointCache

    paths = []
    for i in range(12):
        (tmp_path / f"run{i}").mkdir()
        path = tmp_path / f"run{i}" / "model0_latest.pt"
        torch.save({"kernels": [2, 2, 2, 2], "name": f"m{i}", "state_dict": MNISTNet((2, 2, 2, 2)).state_dict()}, path)
        paths.append(path)
    cache = CheckpointCache(capacity=4)
    for path in paths:
        model, name = cache.load(path)
    assert len(cache) == 4 and name == "m11"
    paths[10].unlink()
    cache.load(paths[0])
    assert paths[10] not in cache and paths[0] in cache and paths[11] in cache  # the deleted run's model is gone


def test_a_png_whose_text_chunk_decompresses_too_large_is_a_400(client):
    start_run(client)
    wait_run_end(client)
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (20 * 1024 * 1024), zip=True)  # 20 MB of text in a ~20 KB zTXt chunk
    buffer = io.BytesIO()
    Image.new("L", (28, 28), 255).save(buffer, format="PNG", pnginfo=info)
    assert len(buffer.getvalue()) < 100_000
    response = client.post("/predict", json={"image": "data:image/png;base64,"
                                             + base64.b64encode(buffer.getvalue()).decode()})
    assert response.status_code == 400 and response.get_json()["field"] == "image"


@pytest.mark.slow  # over 2 s on a 2-core CPU: the whole suite runs it
def test_a_huge_drawing_is_shrunk_before_it_is_turned_into_numbers_and_reads_the_same():
    from PIL import ImageDraw

    from mnist_monitor.inference.predict import MAX_DECODED_SIDE, decode_png_data_url, image_to_tensor

    def seven(side: int) -> str:
        image = Image.new("RGBA", (side, side), (0, 0, 0, 255))
        s = side / 280  # the same 7 as on the page's 280 px canvas, scaled
        ImageDraw.Draw(image).line([(70 * s, 60 * s), (210 * s, 60 * s), (120 * s, 230 * s)],
                                   fill=(255, 255, 255, 255), width=round(20 * s))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    assert decode_png_data_url(seven(4096)).size == (MAX_DECODED_SIDE, MAX_DECODED_SIDE)  # 64 MB of floats at most
    assert decode_png_data_url(seven(280)).size == (280, 280)  # a drawing from the page is untouched
    small, huge = image_to_tensor(seven(280)), image_to_tensor(seven(4096))
    assert torch.nn.functional.cosine_similarity(small.flatten(), huge.flatten(), dim=0) > 0.97
