"""Time to accuracy in ONE epoch: training recipes for Model 1 [32,64,64,64], seeds 0, 1 and 2.

Every recipe keeps the network the user configured and changes only how it is trained: batch size,
peak learning rate and the one-cycle schedule's warm-up share, label smoothing. Each run trains one
epoch of all 55,000 training images on this machine's CPU (the trainer as the server runs it,
without pictures) and reports the test accuracy at its end; the table gives each seed and the
median, and the seconds of the run. --default also runs the page's default 3-epoch run of the
chosen recipe, to check that it does not end worse.

    python benchmarks/one_epoch.py [--seeds 0,1,2] [--recipes all|NAME,...] [--default NAME]
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench import parser  # noqa: E402  (puts the project on the import path)

RECIPES = {  # name -> settings of the request body (the rest at their defaults); warm-up share 0.3 unless named
    "batch 256, peak 0.005 (the previous default)": {"batch_size": 256, "learning_rate": 0.005, "label_smoothing": 0.0},
    "batch 128, peak 0.004": {"batch_size": 128, "learning_rate": 0.004, "label_smoothing": 0.0},
    "batch 128, peak 0.004, label smoothing 0.1": {"batch_size": 128, "learning_rate": 0.004, "label_smoothing": 0.1},
    "batch 128, peak 0.004, warm-up 0.15, label smoothing 0.1": {"batch_size": 128, "learning_rate": 0.004,
                                                                  "warmup": 0.15, "label_smoothing": 0.1},
    "batch 64, peak 0.002, warm-up 0.15, label smoothing 0.1": {"batch_size": 64, "learning_rate": 0.002,
                                                                 "warmup": 0.15, "label_smoothing": 0.1},
    "batch 256, peak 0.01, warm-up 0.15, label smoothing 0.1": {"batch_size": 256, "learning_rate": 0.01,
                                                                 "warmup": 0.15, "label_smoothing": 0.1},
}


def run(settings: dict, seed: int, epochs: int, data_dir: str) -> tuple[float, float]:
    """(test accuracy % after the last epoch, seconds)."""
    from mnist_monitor.config import parse_train_config
    from mnist_monitor.training.trainer import Trainer

    body = {"epochs": epochs, "seed": seed, "models": [{"kernels": [32, 64, 64, 64]}], **settings}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        status = Trainer(parse_train_config(body), data_dir, Path(tmp) / "run", monitor=False).run()
        seconds = time.perf_counter() - started
    if status["state"] != "finished":
        raise RuntimeError(status["error"])
    return status["models"][0]["test_accuracy"], seconds


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--recipes", default="all", help="'all' or names from the table, separated by ';'")
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = list(RECIPES) if args.recipes == "all" else args.recipes.split(";")
    print(f"Model 1, {args.epochs} epoch(s), test accuracy % per seed {seeds}, median, seconds per run (median)")
    for name in names:
        results = [run(RECIPES[name], seed, args.epochs, args.data_dir) for seed in seeds]
        accuracies = [a for a, _ in results]
        print(f"| {name} | {' / '.join(f'{a:.2f}' for a in accuracies)} | {statistics.median(accuracies):.2f} "
              f"| {statistics.median(s for _, s in results):.0f} s |", flush=True)


if __name__ == "__main__":
    main()
