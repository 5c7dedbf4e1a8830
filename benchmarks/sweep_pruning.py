"""What the median pruner saves: the same search (learning rate 1e-4..0.3 on a log scale, and the
seed) with pruning and without, on the real MNIST, each driven in this process as
``python train.py --sweep`` drives it. Prints, per mode: the training images processed over all
trials, the wall time, the trials pruned, and the best validation accuracy found; then the ratios
(pruned / not pruned). The sampler's seed is the same; once a trial is pruned the TPE sampler
sees other results, so the later trials may differ between the two modes.

    python benchmarks/sweep_pruning.py [--trials 12] [--epochs 2] [--train-samples 3000] [--json]
"""
from __future__ import annotations

import json
import tempfile
import time

from bench import parser


def run_sweep(data_dir: str, runs_dir: str, body: dict) -> dict:
    from mnist_monitor.runstore import RunStore
    from mnist_monitor.sweeps.driver import SweepDriver
    from mnist_monitor.sweeps.folder import SweepStore
    from mnist_monitor.sweeps.spec import parse_sweep
    from mnist_monitor.training.trainer import Trainer
    from mnist_monitor.scheduling.manager import TrainingManager

    store = RunStore(runs_dir)
    manager = TrainingManager(store, data_dir, {"pictures": False, "layer_stats": False}, trainer_class=Trainer)
    sweeps = SweepStore(runs_dir)
    driver = SweepDriver(sweeps, manager)
    started = time.perf_counter()
    sweep = driver.create(parse_sweep(body))
    while driver.drives(sweep.sweep_id):
        time.sleep(0.5)
        driver.pump_all()
    wall = time.perf_counter() - started
    driver.close()
    manager.shutdown(30)
    summary = sweeps.summary(sweep, store)
    images = sum(m.samples for row in summary["runs"] if row["run_id"]
                 for m in store.snapshot(row["run_id"]).status.models)
    best = max((r["objective"] for r in summary["runs"] if r["state"] == "finished"), default=None)
    return {"state": summary["state"], "trials": len(summary["runs"]), "images": images, "wall_s": round(wall, 1),
            "pruned": sum(r["state"] == "pruned" for r in summary["runs"]),
            "failed": sum(r["state"] == "failed" for r in summary["runs"]), "best_val_accuracy": best,
            "importance": summary["importance"]}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-samples", type=int, default=3000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    base = {"epochs": args.epochs, "train_samples": args.train_samples, "models": [{"kernels": [16, 32, 32, 32]}]}
    results = {}
    for prune in ("median", "none"):
        body = {"base": base, "trials": args.trials, "prune": prune,
                "search": {"learning_rate": {"low": 0.0001, "high": 0.3, "log": True}, "seed": [0, 1, 2]}}
        with tempfile.TemporaryDirectory() as runs_dir:
            results[prune] = run_sweep(args.data_dir, runs_dir, body)
    results["ratio_images"] = round(results["median"]["images"] / results["none"]["images"], 3)
    results["ratio_wall"] = round(results["median"]["wall_s"] / results["none"]["wall_s"], 3)
    if args.json:
        print(json.dumps(results))
        return
    for prune in ("median", "none"):
        r = results[prune]
        print(f"prune {prune:6}: {r['images']:,} training images, {r['wall_s']} s, {r['pruned']} pruned, "
              f"{r['failed']} failed of {r['trials']}; best validation accuracy {r['best_val_accuracy']} %; "
              f"importance {r['importance']}")
    print(f"with pruning / without: images x{results['ratio_images']}, wall time x{results['ratio_wall']}")


if __name__ == "__main__":
    main()
