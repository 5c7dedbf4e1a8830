"""Start-up and wind-down: from pressing Start to the first trained batch, and from the last batch
to the run being `finished`, for the page's two default models, through the app's own request.

Also times the parts of the start: reading MNIST into tensors, and building the models. Runs
--runs runs in one server process (the second and later show what a warm process costs).

    python benchmarks/startup.py [--runs 2] [--data-dir ../shared/mnist]
"""
from __future__ import annotations

import tempfile
import time

from bench import parser  # noqa: E402  (puts the project on the import path)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()
    from mnist_monitor import data
    from server import create_app

    steps: list[float] = []
    loads: list[float] = []
    real_load = data.load_mnist

    def timed_load(*a, **k):
        started = time.time()
        result = real_load(*a, **k)
        loads.append(time.time() - started)
        return result

    from mnist_monitor.training import trainer as train
    train.load_mnist = timed_load
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"RUNS_DIR": tmp, "DATA_DIR": args.data_dir,
                          "TRAINER_OPTIONS": {"on_step": lambda trainer, m: steps.append(time.time())}})
        client = app.test_client()
        for i in range(args.runs):
            steps.clear()
            pressed = time.time()
            assert client.post("/start_training", json={"epochs": 1, "train_samples": 4096}).status_code == 202
            app.extensions["training"].wait(300)
            status = client.get("/training_status").get_json()
            assert status["state"] == "finished", status
            print(f"run {i + 1}: Start -> first trained batch {steps[0] - pressed:.2f} s (reading MNIST "
                  f"{loads[-1]:.2f} s of it); last batch -> finished {status['finished_at'] - steps[-1]:.2f} s "
                  f"(the last evaluation, checkpoints and pictures included)", flush=True)


if __name__ == "__main__":
    main()
