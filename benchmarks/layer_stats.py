"""What the per-layer statistics cost training: the trainer with and without them, in one process.

Model 1 [32,64,64,64] at batch 512 (as benchmarks/throughput.py), monitoring on, measured in the
order on off off on (pairs cancel drift), each over a fixed window after a warm-up, evaluation time
excluded. Prints images/s for each and the cost 1 - on/off.

    python benchmarks/layer_stats.py [--window 6] [--warmup 3] [--rounds 2] [--data-dir ../shared/mnist]
"""
from __future__ import annotations

import statistics
import sys

from bench import ROOT, parser  # noqa: E402  (puts the project on the import path)
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from throughput import MODELS, measure_trainer

    p = parser(__doc__)
    p.add_argument("--window", type=float, default=6.0, help="seconds measured per trainer")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=2, help="rounds of on-off-off-on")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    figures = {True: [], False: []}
    for _ in range(args.rounds):
        for stats in (True, False, False, True):
            r = measure_trainer(MODELS["Model 1"], args.data_dir, args.device, args.warmup, args.window,
                                monitor=True, layer_stats=stats)
            figures[stats].append(r["images_per_sec"])
            print(f"  layer statistics {'on ' if stats else 'off'}: {r['images_per_sec']:7.0f} images/s", flush=True)
    on, off = statistics.median(figures[True]), statistics.median(figures[False])
    print(f"Model 1, batch 512, {args.device}: median {on:.0f} images/s with the per-layer statistics, "
          f"{off:.0f} without: cost {100 * (1 - on / off):+.1f}%")


if __name__ == "__main__":
    main()
