"""The training command line: trains 1 to 4 MNISTNet models into a run folder (the same one the
web monitor shows), resumes a run, or drives a sweep without the server.

    python train.py --kernels 32,64,64,64 --epochs 1
    python train.py --resume runs/<run_id>
    python train.py --sweep sweep.json
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from mnist_monitor.config import (DATA_DIR_ENV, DEFAULT_KEEP_RUNS, DEFAULT_KERNELS, DEFAULT_RUNS_DIR, MAX_MODELS,
                                  SHARED_KEYS, ConfigError, default_data_dir, form_settings, parse_kernels_text,
                                  parse_train_config, renamed_schedule)
from mnist_monitor.runstore import RecordError, Run, RunStore
from mnist_monitor.training.checkpoints import ResumeError
from mnist_monitor.training.trainer import Trainer
from model import describe

log = logging.getLogger("train")

# ---------------------------------------------------------------- command line

FLAG_HELP = {  # run-wide settings; defaults, choices and limits come from mnist_monitor/config.py
    "epochs": "passes over the training images",
    "optimizer": "optimizer of every model",
    "learning_rate": "learning rate, the peak of the one-cycle schedule",
    "batch_size": "images per training step",
    "lr_schedule": "learning-rate schedule",
    "warmup": "share of the one-cycle schedule spent warming up to the peak learning rate",
    "label_smoothing": "label smoothing of the training loss",
    "precision": "auto uses bf16 where the hardware runs it natively",
    "train_samples": "train on only this many images",
    "seed": "seed of weights, data order and dropout",
    "device": "where to train",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train MNISTNet models and write a run folder "
                                            "(the same one the web monitor shows).")
    p.add_argument("--kernels", action="append", metavar="K1,K2,K3,K4",
                   help="conv output channels of one model; repeat for up to %d models (default: %s)"
                        % (MAX_MODELS, " and ".join(",".join(map(str, k)) for k in DEFAULT_KERNELS)))
    settings = form_settings()
    for key in SHARED_KEYS:
        default = settings["defaults"].get(key)
        choices = settings["choices"].get(key)
        kind = type(default) if default is not None else int
        if key == "lr_schedule":
            kind = renamed_schedule  # --lr-schedule none, the old word, still works
        limits = settings["limits"].get(key)
        where = f"{limits[0]} to {limits[1]}; " if limits and not choices else ""
        if key == "learning_rate":  # 0 is not a learning rate: the range is open there
            where = f"greater than {limits[0]}, at most {limits[1]:g}; "
        shown = "all" if default is None else default
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, choices=choices,
                       help=f"{FLAG_HELP[key]} ({where}default {shown})")
    p.add_argument("--data-dir", default=default_data_dir(),
                   help=f"folder that holds MNIST/raw/ (env {DATA_DIR_ENV}; default: the project's data/)")
    p.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR),
                   help="where run folders are written (default: the project's runs/, which the server lists)")
    p.add_argument("--keep-runs", type=int, default=DEFAULT_KEEP_RUNS,
                   help=f"keep the newest N runs (0: keep all; default {DEFAULT_KEEP_RUNS})")
    p.add_argument("--sweep", metavar="SWEEP_JSON",
                   help="run a sweep described in a JSON file (the body of POST /sweeps: base, grid or search, "
                        "trials, prune) without the server; the server lists it when started on the same runs folder")
    p.add_argument("--import", dest="import_zip", metavar="RUN_ZIP",
                   help="make a run in --runs-dir from a run's export.zip (the page's \"the whole run (.zip)\" link "
                        "under a run's status, or GET /runs/<id>/export.zip), checked file by file; it is then listed, opened and resumed like "
                        "any other")
    p.add_argument("--tensorboard", metavar="OUT_DIR",
                   help="write runs' scalars, hyperparameters and pictures as TensorBoard event files in OUT_DIR "
                        "(then: tensorboard --logdir OUT_DIR); the runs named after it, else every run in --runs-dir; a "
                        "run written again replaces its files there (needs pip install -r requirements-tensorboard.txt)")
    p.add_argument("run_ids", nargs="*", metavar="RUN", help="with --tensorboard: the runs to write (ids)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="go on with a stopped, failed or interrupted run from its last epoch-end checkpoints "
                        "(its settings come from its config.json)")
    return p


def stop_on_signals(trainer: "Trainer") -> None:
    """Ctrl-C or SIGTERM: stop at the next batch; the run ends 'stopped' and can be resumed."""
    def handler(signum, frame):
        log.info("%s: stopping at the next batch; go on later with: python train.py --resume %s",
                 signal.Signals(signum).name, trainer.folder.path)
        trainer.stop_event.set()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends the process at once

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def make_trainer(args, request: dict) -> tuple[Trainer, RunStore]:
    """The trainer of a new run (settings from the flags) or of a resumed one (from its folder), prepared."""
    if args.resume:
        if request or args.kernels:
            raise ConfigError("resume", "a resumed run keeps its settings (its config.json): drop the other "
                                        "settings flags")
        run = Run(Path(args.resume).resolve())
        try:
            config = parse_train_config(run.config())
        except RecordError as exc:
            raise ResumeError(f"{args.resume} is not a run folder that can be resumed: {exc}") from None
        store = RunStore(run.path.parent, keep=args.keep_runs, create=False)
        trainer = Trainer(config, args.data_dir, run.path, progress_bar=True, resume=True)
    else:
        if args.kernels:
            request["models"] = [{"kernels": list(parse_kernels_text(k, f"--kernels {k}"))} for k in args.kernels]
        config = parse_train_config(request)
        store = RunStore(args.runs_dir, keep=args.keep_runs)
        trainer = Trainer(config, args.data_dir, store.create().path, progress_bar=True)
    trainer.prepare()
    return trainer, store


def run_sweep(args) -> int:
    """``--sweep``: drive a sweep here, one trial at a time, until it ends (Ctrl-C: the trial stops
    resumably and the sweep waits, 'running', for a server or this command's next start to go on)."""
    from mnist_monitor.scheduling.manager import TrainingManager
    from mnist_monitor.sweeps.driver import SweepDriver
    from mnist_monitor.sweeps.folder import SweepStore
    from mnist_monitor.sweeps.spec import parse_sweep

    try:
        with open(args.sweep, encoding="utf-8") as f:
            spec = parse_sweep(json.load(f))
    except (OSError, ValueError) as exc:  # ConfigError is a ValueError, and so is bad JSON
        print(f"error: {args.sweep}: {exc}", file=sys.stderr)
        return 2
    store = RunStore(args.runs_dir, keep=args.keep_runs)
    sweeps = SweepStore(args.runs_dir)
    manager = TrainingManager(store, args.data_dir, {"progress_bar": True}, trainer_class=Trainer)
    driver = SweepDriver(sweeps, manager)
    sweep = driver.create(spec)
    interrupted = threading.Event()
    before = {sig: signal.signal(sig, lambda *_: interrupted.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while driver.drives(sweep.sweep_id) and not interrupted.wait(1.0):
            driver.pump_all()
    finally:
        driver.close()  # first: a trial stopped now is resumed later, not a result
        manager.shutdown(30)
        for sig, handler in before.items():
            signal.signal(sig, handler)
    summary = sweeps.summary(sweep, store)
    print(f"sweep {sweep.sweep_id}: {summary['state']} ({sweep.path})")
    for row in summary["runs"]:
        objective = "–" if row["objective"] is None else f"{row['objective']:.2f} %"
        print(f"  trial {row['trial']}: {row['values']} -> {row['state']}, {summary['objective']} {objective}"
              + (" (best)" if row["run_id"] and row["run_id"] == summary["best_run_id"] else ""))
    if summary["importance"]:
        print("  importance: " + ", ".join(f"{k} {v:.0%}" for k, v in summary["importance"].items()))
    if interrupted.is_set():
        print("interrupted: the sweep is still 'running'; a server started on this runs folder goes on with it",
              file=sys.stderr)
        return 1
    return 0 if summary["state"] == "finished" else 1


def carry(args) -> int:
    """--import ZIP (a run made in --runs-dir) or --tensorboard OUT [RUN ...] (runs written as event files)."""
    from mnist_monitor.export.run_zip import AlreadyHere, ImportRefused, import_zip
    from mnist_monitor.sweeps.folder import SweepStore

    if args.import_zip:
        store = RunStore(args.runs_dir, keep=0)
        try:
            run_id = import_zip(args.import_zip, store,
                                sweep_known=lambda sweep_id: SweepStore(args.runs_dir).get(sweep_id) is not None)
        except (ImportRefused, AlreadyHere, OSError) as exc:
            print(f"error: {args.import_zip}: {exc}", file=sys.stderr)
            return 1
        print(f"imported as run {run_id}: {store.run(run_id).path}")
        return 0
    from mnist_monitor.export.tensorboard import TensorBoardMissing, write_runs
    store = RunStore(args.runs_dir, keep=0, create=False)
    run_ids = args.run_ids or (store.run_ids() if store.root.is_dir() else [])
    if not run_ids:
        print(f"error: no runs in {store.root}: nothing to write (train one, or name --runs-dir)", file=sys.stderr)
        return 1
    try:
        written = write_runs(store, run_ids, Path(args.tensorboard))
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    except (TensorBoardMissing, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} run(s) written to {args.tensorboard}: tensorboard --logdir {args.tensorboard}")
    return 0


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    request = {key: getattr(args, key) for key in SHARED_KEYS if getattr(args, key) is not None}
    if args.run_ids and not args.tensorboard:
        print(f"error: unexpected arguments {' '.join(args.run_ids)} (run ids go after --tensorboard OUT_DIR)",
              file=sys.stderr)
        return 2
    if args.import_zip or args.tensorboard:
        if request or args.kernels or args.resume or args.sweep:
            print("error: --import and --tensorboard take no settings flags", file=sys.stderr)
            return 2
        return carry(args)
    if args.sweep:
        if request or args.kernels or args.resume:
            print("error: --sweep takes its settings from the sweep's file (its \"base\"): drop the other "
                  "settings flags", file=sys.stderr)
            return 2
        return run_sweep(args)
    try:
        trainer, store = make_trainer(args, request)
    except (ConfigError, ResumeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop_on_signals(trainer)
    config, run_id = trainer.config, trainer.run_id
    for m in config.models:
        info = describe(m.kernels)
        log.info("%s %s: %d parameters, %.1f MMAC per image", m.name, list(m.kernels),
                 info["total_parameters"], info["macs_per_image"] / 1e6)
    from tqdm.contrib.logging import logging_redirect_tqdm
    with logging_redirect_tqdm():  # log lines above the progress bar, not glued to its end
        status = trainer.run()
    store.cleanup(protect={run_id})
    print(f"run folder: {trainer.folder.path}")
    for m in status["models"]:
        print(f"{m['name']}: test accuracy {m['test_accuracy']}%, {m['samples_per_sec']} images/s")
    if status["state"] == "failed":
        print(f"error: {status['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
