"""How long POST /predict with "layers": true takes for two models while a run trains.

Starts a run of the page's two default models (8,192 training images, 3 epochs) in the app,
waits for the first checkpoints, then times --requests predictions of test digits with every
layer's pictures, while training goes on. Prints the median and the slowest, in ms.

    python benchmarks/predict_layers.py [--requests 20] [--data-dir ../shared/mnist]
"""
from __future__ import annotations

import statistics
import tempfile
import time

from bench import parser  # noqa: E402  (puts the project on the import path)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--requests", type=int, default=20)
    args = p.parse_args()
    from server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"RUNS_DIR": tmp, "DATA_DIR": args.data_dir})
        client = app.test_client()
        assert client.post("/start_training", json={"train_samples": 8192, "epochs": 3}).status_code == 202
        while not all(m.get("checkpoint") for m in client.get("/training_status").get_json()["models"] or [{}]):
            time.sleep(0.2)
        times = []
        for i in range(args.requests):
            started = time.perf_counter()
            answer = client.post("/predict", json={"test_index": i, "layers": True})
            times.append(1000 * (time.perf_counter() - started))
            assert answer.status_code == 200 and len(answer.get_json()["predictions"]) == 2
        state = client.get("/training_status").get_json()["state"]
        app.extensions["training"].stop_all()
        app.extensions["training"].wait(60)
    print(f"POST /predict with layers, 2 models, while training ({state} throughout): "
          f"median {statistics.median(times):.0f} ms, slowest {max(times):.0f} ms over {len(times)} requests")


if __name__ == "__main__":
    main()
