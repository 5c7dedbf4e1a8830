"""How long GET /runs takes with many runs in the folder: warm (the parsed folders cached, as for
a page polling every 3 s) against the same answer with nothing cached (every folder read again).

Writes --runs finished run folders of two models (no training), then times the route through the
app, --repeats times each way, and prints the medians in ms and their ratio.

    python benchmarks/runs_listing.py [--runs 1000] [--repeats 5]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import ROOT, parser

sys.path.insert(0, str(ROOT / "tests"))


def median_ms(client, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before:
            before()
        started = time.perf_counter()
        assert client.get("/runs").status_code == 200
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    from helpers import fake_run
    from mnist_monitor.runstore import RunStore
    from server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs")
        for _ in range(args.runs):
            fake_run(store, models=2, images=False)
        app = create_app({"RUNS_DIR": str(store.root), "DATA_DIR": tmp})
        client, runs = app.test_client(), app.extensions["runs"]
        client.get("/runs")  # fills the cache
        warm = median_ms(client, args.repeats)
        cold = median_ms(client, args.repeats, before=lambda: runs._parsed.clear())
    print(f"GET /runs with {args.runs} runs: {warm:.0f} ms warm, {cold:.0f} ms with every folder read again "
          f"({cold / warm:.1f}x)")


if __name__ == "__main__":
    main()
