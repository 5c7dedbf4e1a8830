"""Peak memory of eight POST /predict requests at once, each a 4,096 x 4,096 PNG drawing (the
largest accepted), against the same requests decoded at full size as before the decoding was
bounded. Each way runs in a fresh process; prints the growth of its peak resident memory (MB).

    python benchmarks/predict_memory.py [--requests 8]
"""
from __future__ import annotations

import base64
import io
import resource
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench import ROOT, parser


def drawing(side: int) -> str:
    """A white 7 on black, ``side`` px a side, as a PNG data URL (a few KB: mostly black)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    scale = side / 280  # the page's canvas is 280 px
    ImageDraw.Draw(image).line([(70 * scale, 60 * scale), (210 * scale, 60 * scale), (120 * scale, 230 * scale)],
                               fill=(255, 255, 255, 255), width=round(20 * scale))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def measure(requests: int, bounded: bool) -> float:
    """MB the process's peak resident memory grew by while the requests ran."""
    import torch

    from mnist_monitor.inference import predict
    from model import MNISTNet
    from mnist_monitor.runstore import RunStore
    from server import create_app

    if not bounded:
        predict.MAX_DECODED_SIDE = 1 << 20  # no shrinking: decoded as before
    tmp = Path(tempfile.mkdtemp())
    run = RunStore(tmp / "runs").create()
    (run.path / "config.json").write_text('{"models": [{"kernels": [8, 16, 16, 16]}]}')
    (run.path / "status.json").write_text('{"state": "finished", "models": [{"name": "m", "kernels": [8,16,16,16], '
                                          '"optimizer": "adam", "learning_rate": 0.01, "batch_size": 8, '
                                          '"parameters": 1, "epoch": 1, "epochs": 1, "batch": 1, "batches": 1}]}')
    torch.save({"kernels": [8, 16, 16, 16], "name": "m", "state_dict": MNISTNet((8, 16, 16, 16)).state_dict()},
               run.path / "model0_latest.pt")
    client = create_app({"RUNS_DIR": str(tmp / "runs"), "DATA_DIR": str(tmp)}).test_client()
    body = {"image": drawing(4096), "run_id": run.run_id}
    client.post("/predict", json={"image": drawing(280), "run_id": run.run_id})  # warm-up: a drawing from the page
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(client.post("/predict", json=body).status_code))
               for _ in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * requests, codes
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--worker", choices=("bounded", "full"), help=argparse_hidden())
    args = p.parse_args()
    if args.worker:
        print(measure(args.requests, args.worker == "bounded"))
        return
    grown = {}
    for way in ("full", "bounded"):
        out = subprocess.run([sys.executable, __file__, "--worker", way, "--requests", str(args.requests)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        grown[way] = float(out.stdout.strip().splitlines()[-1])
    print(f"{args.requests} requests of a 4,096 px drawing at once: peak memory +{grown['full']:.0f} MB decoded "
          f"at full size, +{grown['bounded']:.0f} MB bounded to {1024} px ({grown['full'] / grown['bounded']:.1f}x)")


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
