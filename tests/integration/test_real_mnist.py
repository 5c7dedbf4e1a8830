"""Short real trainings on the real MNIST, through the HTTP API."""
import pytest

from helpers import PNG_SIGNATURE as PNG, wait_for


@pytest.fixture
def real_client(tmp_path, mnist_sample, make_app):
    app = make_app({"RUNS_DIR": str(tmp_path / "runs"), "DATA_DIR": str(mnist_sample)})
    yield app.test_client()
    app.extensions["training"].shutdown(120)


def test_quick_run_on_real_mnist_learns_both_models(real_client):
    client = real_client
    response = client.post("/start_training", json={"train_samples": 8192, "batch_size": 128, "epochs": 1})
    assert response.status_code == 202
    seen_running = []

    def done():
        status = client.get("/training_status").get_json()
        if status["state"] == "running":
            seen_running.append(status)
        return status["state"] in ("finished", "failed", "stopped") and status

    status = wait_for(done, timeout=300, interval=0.2, message="the MNIST run to finish")
    assert status["state"] == "finished", status["error"]
    assert seen_running, "the run was never observed running"
    assert status["device"] in ("cpu", "cuda", "mps") and status["precision"] in ("fp32", "bf16")
    for m in status["models"]:
        assert m["batches"] == 64 and m["epoch"] == 1 and m["progress"] == 100.0
        assert m["test_accuracy"] > 85.0, m
        assert m["val_accuracy"] > 85.0 and m["loss"] < 1.0
    assert status["models"][0]["kernels"] == [32, 64, 64, 64] and status["models"][1]["kernels"] == [16, 32, 32, 32]
    # per-digit test accuracy: ten values whose mean is within a few points of the test accuracy
    classes = client.get(f"/runs/{status['run_id']}/metrics?kind=classes").get_json()["rows"]
    assert [(r["model"], r["epoch"]) for r in classes] == [(0, 1), (1, 1)]
    for row, m in zip(classes, status["models"]):
        assert len(row["class_accuracy"]) == 10 and min(row["class_accuracy"]) > 50
        assert abs(sum(row["class_accuracy"]) / 10 - m["test_accuracy"]) < 2, (row, m["test_accuracy"])
    assert "curves" in status["images"] and all("samples" in m["images"] for m in status["models"])
    for url in list(status["images"].values()) + [u for m in status["models"] for u in m["images"].values()]:
        image = client.get(url)
        assert image.status_code == 200 and image.mimetype == "image/png" and image.data.startswith(PNG), url
    # a clear hand-drawn 7 (a stroke as a person draws it on the page's canvas) is read as 7
    body = client.post("/predict", json={"image": drawn_digit_png("7")}).get_json()
    assert body["predictions"][0]["model"] == "Model 1"
    assert body["predictions"][0]["digit"] == 7, body["predictions"][0]["probabilities"]


STROKES = {  # polylines in a 280x280 canvas, as a person draws the digit
    "7": [(70, 60), (210, 60), (170, 140), (130, 240)],
    "1": [(140, 40), (140, 240)],
}


def drawn_digit_png(digit: str) -> str:
    import base64
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (280, 280), "black")
    draw = ImageDraw.Draw(image)
    draw.line(STROKES[digit], fill="white", width=18, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_time_left_is_honest_once_a_tenth_of_the_run_is_done(real_client):
    """The status's time left, sampled from 10 % to 60 % of the run, against the time the run then took
    (both by the trainer's clock: from the status's time of writing to the run's end)."""
    client = real_client
    response = client.post("/start_training", json={"epochs": 2, "train_samples": 12288, "batch_size": 128,
                                                    "models": [{"kernels": [16, 32, 32, 32]}]})
    assert response.status_code == 202
    samples = []

    def done():
        status = client.get("/training_status").get_json()
        progress = status["models"][0]["progress"] if status["models"] else 0
        if status["state"] == "running" and 10 <= progress < 60 and status["eta_seconds"] is not None:
            samples.append((status["updated_at"], progress, status["eta_seconds"]))
        return status["state"] in ("finished", "failed") and status

    status = wait_for(done, timeout=300, interval=0.25, message="the run to finish")
    assert status["state"] == "finished" and len(samples) >= 3, samples
    for at, progress, eta in sorted(set(samples)):
        actual = status["finished_at"] - at
        # +1 s: the last seconds (the last pictures, the last evaluations) are a few seconds' guess
        assert abs(eta - actual) <= 0.25 * actual + 1.0, (progress, eta, actual)
