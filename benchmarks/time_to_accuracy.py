"""Time to 99% test accuracy with the page's default settings, for Model 1 [32,64,64,64].

Trains through the project's Trainer (monitoring on, as the page runs it) and prints the epoch
and the seconds (wall clock from the start of training, evaluation included) at which test
accuracy first reaches 99.0%, and the final test accuracy.

    python benchmarks/time_to_accuracy.py [--json] [--epochs N] [--precision auto|fp32|bf16]
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from bench import parser  # noqa: E402  (puts the project on the import path)

TARGET = 99.0


def main() -> None:
    from mnist_monitor.config import TrainConfig, parse_train_config
    from mnist_monitor.runstore import Run
    from mnist_monitor.training.trainer import Trainer

    defaults = TrainConfig.__dataclass_fields__
    p = parser(__doc__)
    p.add_argument("--json", action="store_true")
    p.add_argument("--epochs", type=int, default=defaults["epochs"].default, help="default: the page's")
    p.add_argument("--precision", default=defaults["precision"].default)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    config = parse_train_config({"models": [{"kernels": [32, 64, 64, 64]}], "epochs": args.epochs,
                                 "precision": args.precision, "seed": args.seed, "device": args.device})
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        status = Trainer(config, args.data_dir, run_dir).run()
        total = time.perf_counter() - started
        if status["state"] != "finished":
            raise SystemExit(f"run {status['state']}: {status['error']}")
        evals = [r for r in Run(run_dir).metrics() if r["kind"] == "eval"]
    reached = next((r for r in evals if r["test_accuracy"] >= TARGET), None)
    m = config.models[0]
    result = {
        "device": status["device"], "precision": status["precision"], "epochs": config.epochs,
        "batch_size": m.batch_size, "optimizer": m.optimizer, "learning_rate": m.learning_rate,
        "lr_schedule": config.lr_schedule, "target": TARGET,
        "epochs_to_target": reached["epoch"] if reached else None,
        "seconds_to_target": round(reached["time"], 1) if reached else None,
        "final_test_accuracy": evals[-1]["test_accuracy"], "total_seconds": round(total, 1),
        "test_accuracy_per_epoch": [round(r["test_accuracy"], 2) for r in evals],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"Model 1 [32,64,64,64], page defaults: {m.optimizer}, lr {m.learning_rate:g} ({config.lr_schedule}), "
          f"batch {m.batch_size}, {config.epochs} epochs, {status['device']}, precision {status['precision']}")
    print("test accuracy per epoch: " + ", ".join(f"{a:.2f}%" for a in result["test_accuracy_per_epoch"]))
    if reached:
        print(f"reached {TARGET}% test accuracy after {reached['epoch']} epoch(s), {reached['time']:.1f} s")
    else:
        print(f"did not reach {TARGET}% test accuracy in {config.epochs} epochs")
    print(f"final test accuracy {result['final_test_accuracy']:.2f}% after {total:.1f} s")


if __name__ == "__main__":
    main()
