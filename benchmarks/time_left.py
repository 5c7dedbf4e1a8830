"""How right the time left is: a real run, as the server trains it (status, pictures), on this
machine's CPU; at each tenth of the run, the estimate the status said against the time it really
took from then on.

    python benchmarks/time_left.py [--epochs 2] [--train-samples 20000] [--load]

--load keeps one core busy with another process for the whole run (a steady load from other work).
"""
from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

from bench import parser  # noqa: E402  (puts the project on the import path)


def spin() -> None:
    while True:
        pass


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-samples", type=int, default=20_000)
    p.add_argument("--load", action="store_true")
    args = p.parse_args()
    from mnist_monitor.config import parse_train_config
    from mnist_monitor.training.trainer import Trainer

    seen = []  # (seconds since start, fraction of the images done, estimate or None)
    started = time.perf_counter()

    def on_step(trainer, _model) -> None:
        done = sum(m.samples for m in trainer.models) / (len(trainer.models) * trainer.config.epochs * trainer.n_train)
        if not seen or done - seen[-1][1] >= 0.01:
            seen.append((time.perf_counter() - started, done, trainer.time_left.seconds()))

    hog = multiprocessing.Process(target=spin, daemon=True) if args.load else None
    if hog:
        hog.start()
    body = {"epochs": args.epochs, "train_samples": args.train_samples}  # the page's two default models
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(parse_train_config(body), args.data_dir, Path(tmp) / "run", on_step=on_step).run()
    total = time.perf_counter() - started
    if hog:
        hog.terminate()
    print(f"run of {total:.1f} s ({args.epochs} epochs of {args.train_samples:,} images, two models"
          f"{', one core busy with other work' if args.load else ''})")
    print("| done | at | estimate | really left | error |")
    worst, first = 0.0, None
    for at, done, estimate in seen:
        truth = total - at
        if estimate is not None and first is None:
            first = done
        error = None if estimate is None else (estimate - truth) / truth
        if done >= 0.1 and error is not None:
            worst = max(worst, abs(error))
        if round(done * 100) % 10 == 0 or (first == done):
            shown = "estimating" if estimate is None else f"{estimate:.1f} s"
            print(f"| {done:.0%} | {at:.1f} s | {shown} | {truth:.1f} s | {'' if error is None else f'{error:+.0%}'} |")
    print(f"first estimate at {first:.1%} of the run; largest error from 10 % on: {worst:.0%}")


if __name__ == "__main__":
    main()
