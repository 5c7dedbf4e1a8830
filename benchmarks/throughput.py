"""Training throughput: the usual tutorial pipeline vs this project's trainer, in one run.

For Model 1 [32,64,64,64] and Model 2 [16,32,32,32] at batch 512, each model in a fresh process:
  (a) baseline: torchvision MNIST + DataLoader(shuffle, ToTensor, Normalize), fp32, default
      settings, the training loop of PyTorch's own MNIST example;
  (b) this project's Trainer with monitoring on (status.json, curves and images rendered);
  (c) the same Trainer with monitoring off.
(a) runs first (the trainer's malloc tuning cannot be undone); (b) and (c) are then measured twice
each, in the order b c c b, and averaged. Prints training images/s for each (wall clock over a fixed window after a warm-up; time spent in
evaluation is excluded from (b) and (c), which evaluate at epoch ends), the ratio b/a and the
monitoring overhead 1 - b/c.

    python benchmarks/throughput.py [--json] [--window 10] [--data-dir ../shared/mnist]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import ROOT, parser  # noqa: E402  (puts the project on the import path)

MODELS = {"Model 1": [32, 64, 64, 64], "Model 2": [16, 32, 32, 32]}
BATCH = 512


def measure_baseline(kernels, data_dir, device_name, warmup, window) -> dict:
    """PyTorch's examples/mnist/main.py loop, unchanged but for the model."""
    import torch
    import torch.nn.functional as F
    from torchvision import datasets, transforms

    from model import MNISTNet

    device = torch.device(device_name)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    dataset = datasets.MNIST(data_dir, train=True, download=False, transform=transform)
    kwargs = {"batch_size": BATCH, "shuffle": True}
    if device.type == "cuda":
        kwargs.update(num_workers=1, pin_memory=True)
    loader = torch.utils.data.DataLoader(dataset, **kwargs)
    model = MNISTNet(kernels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    model.train()
    images, start, t0 = 0, None, time.perf_counter()
    while True:
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.cross_entropy(output, target)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()  # time finished work, not queued work
            now = time.perf_counter()
            if start is None and now - t0 >= warmup:
                start, images = now, 0
            elif start is not None:
                images += data.shape[0]
                if now - start >= window:
                    return {"images_per_sec": images / (now - start), "images": images, "seconds": now - start}


def measure_trainer(kernels, data_dir, device_name, warmup, window, monitor, **options) -> dict:
    """The project's Trainer, timed at two step boundaries (the first after the warm-up and the
    first after the window; on CUDA after a synchronize): images trained between them over the
    time between them, less the time spent in evaluation."""
    import torch

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.training.trainer import Trainer

    config = parse_train_config({"models": [{"kernels": kernels}], "batch_size": BATCH, "epochs": 100,
                                 "device": device_name})
    with tempfile.TemporaryDirectory() as tmp:
        stop = threading.Event()
        marks = []  # (time a step ended, images trained so far, seconds evaluated so far)
        started = []

        def timed_step(trainer, m):
            now = time.perf_counter()
            if not started:
                started.append(now)
            elif now - started[0] >= warmup and (not marks or now - started[0] >= warmup + window):
                if trainer.device.type == "cuda":  # two syncs in all: at the window's start and end
                    torch.cuda.synchronize()
                    now = time.perf_counter()
                marks.append((now, m.samples, trainer.eval_seconds))
                if len(marks) == 2:
                    stop.set()

        trainer = Trainer(config, data_dir, Path(tmp) / "run", stop_event=stop, monitor=monitor, on_step=timed_step,
                          **options)
        status = trainer.run()
        if status["state"] == "failed":
            raise RuntimeError(status["error"])
        (t0, s0, e0), (t1, s1, e1) = marks[0], marks[-1]
        seconds = (t1 - t0) - (e1 - e0)
        return {"images_per_sec": (s1 - s0) / seconds, "images": s1 - s0, "seconds": seconds,
                "eval_seconds_excluded": e1 - e0, "precision": trainer.precision}


def worker(args) -> None:
    """All measurements of one model in this one process: the baseline first (before the trainer
    tunes malloc, which cannot be undone), then the trainer in the order b c c b. Comparing
    within one process cancels the process-to-process spread of this VM (up to 10% here)."""
    kernels = [int(k) for k in args.kernels.split(",")]
    result = {"baseline": measure_baseline(kernels, args.data_dir, args.device, args.warmup, args.window),
              "monitored": [], "unmonitored": []}
    for kind in ("monitored", "unmonitored", "unmonitored", "monitored"):
        result[kind].append(measure_trainer(kernels, args.data_dir, args.device, args.warmup, args.window,
                                            monitor=kind == "monitored"))
    print(json.dumps(result))


def run_model(kernels, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--kernels", ",".join(map(str, kernels)),
           "--data-dir", args.data_dir, "--device", args.device, "--warmup", str(args.warmup),
           "--window", str(args.window)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{kernels} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--window", type=float, default=6.0, help="seconds measured per process")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before measuring")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--models", default="Model 1,Model 2", help="which of: " + ", ".join(MODELS))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kernels", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device is None:
        import torch
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        return worker(args)
    results = {"device": args.device, "batch_size": BATCH, "window_seconds": args.window, "models": {}}
    for name in [n.strip() for n in args.models.split(",")]:
        kernels = MODELS[name]
        r = run_model(kernels, args)  # one fresh process per model
        a = r["baseline"]["images_per_sec"]
        b, c = (sum(x["images_per_sec"] for x in r[k]) / len(r[k]) for k in ("monitored", "unmonitored"))
        r.update(kernels=kernels, images_per_sec={"a": a, "b": b, "c": c}, ratio_b_over_a=b / a,
                 monitoring_overhead=1 - b / c, precision=r["monitored"][0]["precision"])
        results["models"][name] = r
        if not args.json:
            print(f"{name} {kernels}, batch {BATCH}, {args.device}, precision {r['precision']}:", flush=True)
            print(f"  (a) baseline (torchvision + DataLoader, fp32)  {a:8.0f} images/s")
            print(f"  (b) trainer, monitoring on                     {b:8.0f} images/s  (mean of 2)")
            print(f"  (c) trainer, monitoring off                    {c:8.0f} images/s  (mean of 2)")
            print(f"  speed-up b/a {b / a:.2f}x, monitoring overhead 1 - b/c {100 * (1 - b / c):+.1f}%", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
