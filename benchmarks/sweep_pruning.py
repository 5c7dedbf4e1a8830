"""What each pruner saves and what it costs: the same search (learning rate 1e-4..0.3 on a log
scale, batch size 32 or 128) with the median pruner, successive halving and no pruning, on the real
MNIST, each driven in this process as ``python train.py --sweep`` drives it, over several sampler
seeds (the base's seed). Prints, per seed and pruner: the training images processed over all
trials, the wall time, the trials pruned, and the best validation accuracy found; then per pruner
the totals as ratios against no pruning measured in the same run, and the best accuracy found on
average and at worst. Once a trial is pruned the TPE sampler sees other results, so the later
trials may differ between pruners.

    python benchmarks/sweep_pruning.py [--trials 12] [--epochs 3] [--train-samples 2000] [--seeds 3] [--json]
"""
from __future__ import annotations

import json
import tempfile
import time

from bench import parser

PRUNERS = ("median", "successive_halving", "none")


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
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=3, help="sampler seeds (the base's seed) each pruner is tried with")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results: dict = {prune: [] for prune in PRUNERS}
    for seed in range(args.seeds):
        base = {"epochs": args.epochs, "train_samples": args.train_samples, "seed": seed,
                "models": [{"kernels": [8, 16, 16, 16]}]}
        for prune in PRUNERS:
            body = {"base": base, "trials": args.trials, "prune": prune,
                    "search": {"learning_rate": {"low": 0.0001, "high": 0.3, "log": True}, "batch_size": [32, 128]}}
            with tempfile.TemporaryDirectory() as runs_dir:
                results[prune].append({"seed": seed, **run_sweep(args.data_dir, runs_dir, body)})
            if not args.json:
                r = results[prune][-1]
                print(f"seed {seed} {prune:18}: {r['images']:>9,} images, {r['wall_s']:6.1f} s, {r['pruned']:2} pruned of "
                      f"{r['trials']}, best {r['best_val_accuracy']} %", flush=True)
    totals = {prune: {"images": sum(r["images"] for r in rows), "wall_s": round(sum(r["wall_s"] for r in rows), 1),
                      "pruned": sum(r["pruned"] for r in rows),
                      "best_mean": round(sum(r["best_val_accuracy"] or 0 for r in rows) / len(rows), 2),
                      "best_worst": min(r["best_val_accuracy"] or 0 for r in rows)} for prune, rows in results.items()}
    for prune in PRUNERS:  # against no pruning, measured in the same run
        totals[prune]["images_ratio"] = round(totals[prune]["images"] / totals["none"]["images"], 3)
        totals[prune]["wall_ratio"] = round(totals[prune]["wall_s"] / totals["none"]["wall_s"], 3)
    if args.json:
        print(json.dumps({"runs": results, "totals": totals}))
        return
    print(f"over {args.seeds} sampler seeds, {args.trials} trials of {args.epochs} epochs on {args.train_samples:,} images:")
    for prune in PRUNERS:
        t = totals[prune]
        print(f"  {prune:18}: images x{t['images_ratio']}, wall x{t['wall_ratio']} of no pruning; {t['pruned']} pruned; "
              f"best validation accuracy {t['best_mean']} % on average, {t['best_worst']} % at worst")


if __name__ == "__main__":
    main()
