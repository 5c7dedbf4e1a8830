"""Training: trains 1 to 4 MNISTNet models interleaved, batch by batch, and records the run folder.

Also a command-line trainer: ``python train.py --kernels 32,64,64,64 --epochs 1``.
"""
from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from checkpoints import ResumeError, Resumption
from config import (DATA_DIR_ENV, DEFAULT_KEEP_RUNS, DEFAULT_KERNELS, DEFAULT_RUNS_DIR, MAX_MODELS, SHARED_KEYS,
                    ConfigError, TrainConfig, default_data_dir, form_settings, parse_kernels_text, parse_train_config,
                    renamed_schedule)
from data import MNISTTensors, load_mnist
from hardware import resolve_precision, select_device, set_up_device
from loop import ModelRun, build_model_run, evaluate
from model import describe
from recorder import STATUS_INTERVAL, Recorder, TrainingError, evaluations, planned_models
from runstore import ModelStatus, RecordError, Run, RunStore, Superseded, WriteError
from timeleft import TimeLeft, spoken

log = logging.getLogger("train")

STOP_CHECK_INTERVAL = 0.5  # seconds between looks for a stop request file (a stat call)


class Trainer:
    """Trains the models of ``config`` interleaved batch by batch and records ``run_dir``.

    Use: ``Trainer(config, data_dir, run_dir).run()``; set ``stop_event`` (or write the run's stop
    request) to stop within one batch. ``on_step(trainer, model_run)`` is called after every
    training step (tests and benchmarks hook in there); ``layer_stats=False`` skips the per-layer
    statistics; ``pictures=False`` draws no pictures (no renderer process); ``monitor=False``
    (benchmarks) draws none either and writes the status only at state changes and epoch ends.
    ``resume``: go on from the folder's epoch-end checkpoints. ``node_id``: the Ray node (status).
    """

    def __init__(self, config: TrainConfig, data_dir, run_dir, stop_event: threading.Event | None = None,
                 monitor: bool = True, status_interval: float = STATUS_INTERVAL, progress_bar: bool = False,
                 on_step=None, layer_stats: bool = True, resume: bool = False, device: torch.device | None = None,
                 pictures: bool = True, node_id: str | None = None):
        self.config = config
        self.node_id = node_id  # the Ray node this trainer runs on, if Ray started it
        self.data_dir = data_dir
        self.folder = Run(run_dir)
        self.run_id = self.folder.run_id
        self.stop_event = stop_event or threading.Event()
        self.progress_bar = progress_bar
        self.on_step = on_step
        self.layer_stats = layer_stats  # measure how each layer learns at each curve point
        self.device = device or select_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.resume = resume
        self.recorder = Recorder(self, monitor, status_interval, pictures=monitor and pictures)
        self.state = "starting"
        self.error: str | None = None
        self.started_at = self.time_zero = time.time()  # metrics "time" counts from time_zero
        self.finished_at: float | None = None
        self.resumes = 0
        self.models: list[ModelRun] = []
        self.n_train = self.n_eval = 0  # training images; validation + test images evaluated at each epoch end
        self.eval_seconds = 0.0  # wall time spent evaluating (benchmarks exclude it)
        self.time_left: TimeLeft | None = None  # from the loop's start
        self.restored_eval_seconds = 0.0  # evaluation seconds of the attempts before a resume
        self._resumption: Resumption | None = None
        self._prepared = False
        self.reporter = None  # a sweep's TrialReporter, when the run is a trial of a sweep
        self.end_reason: str | None = None  # why the run ended early without an error (pruned)

    # ---------------------------------------------------------------- before training
    def prepare(self) -> None:
        """Claim the run folder and write its config (a queued run has it), facts and a 'starting'
        status, once. A resume is checked before anything is written (a refused resume changes
        nothing), then cuts metrics.jsonl back to the checkpoints it goes on from."""
        if self._prepared:
            return
        self._prepared = True
        if not self.resume:
            self._begin(self.folder.start_attempt(1, secrets.token_hex(8), on_superseded=self.stop_event.set))
            return
        try:  # no delete and no other resume between the check and the 'starting' status
            with self.folder.locked():
                self._resumption = r = Resumption.prepare(self.folder, len(self.config.models))
                self.started_at, self.resumes = r.started_at or self.started_at, r.resumes
                self.time_zero = time.time() - r.elapsed
                self._begin(self.folder.start_attempt(self.resumes + 1, secrets.token_hex(8),
                                                      on_superseded=self.stop_event.set))
        except FileNotFoundError:
            raise ResumeError(f"{self.folder.path} is not a run folder (it was deleted)") from None

    def _begin(self, attempt) -> None:
        try:
            self.recorder.begin(attempt, self._resumption)
        except BaseException:
            self.recorder.close()
            raise

    @property
    def ended(self) -> bool:
        """Whether the final status is written (what is left: releasing the writers)."""
        return self.recorder.final_written

    def close(self) -> None:
        """Release a trainer that will not run (its preparation failed)."""
        self.recorder.close()

    def planned_models(self) -> list[ModelStatus]:
        """The models shown before they are built: as configured, or as a resumed run left them."""
        return (self._resumption and self._resumption.models) or planned_models(self.config)

    def status(self) -> dict:
        return self.recorder.status().to_dict()

    # ---------------------------------------------------------------- training
    def run(self) -> dict:
        """Train to the end, a stop, or an error; returns the final status. Never raises for a
        training failure: the run ends 'failed' with the message in status and log."""
        superseded = False
        try:
            set_up_device(self.device)
            self.prepare()
            data = load_mnist(self.data_dir, self.config.train_samples).to(self.device)
            self.n_train, self.n_eval = data.train_x.shape[0], data.val_x.shape[0] + data.test_x.shape[0]
            self.models = [build_model_run(i, mc, self.config, self.n_train, self.device)
                           for i, mc in enumerate(self.config.models)]
            self._restore()
            self.reporter = sweep_reporter(self.folder, len(self.models), self.config.epochs)
            self.recorder.start_pictures([m.name for m in self.models],
                                         self._resumption.kept_rows if self._resumption else [])
            self.state = "running"
            self.recorder.write_status(force=True)
            log.info("run %s: %d model(s) on %s, precision %s, %d training images, %d epochs", self.run_id,
                     len(self.models), self.device, self.precision, self.n_train, self.config.epochs)
            self._train(data)
            self.state = "pruned" if self.end_reason else "stopped" if self.stop_event.is_set() else "finished"
        except Superseded as exc:
            superseded = True
            log.warning("%s", exc)
        except Exception as exc:  # any failure ends the run as 'failed' with a readable message
            self.state = "failed"
            known = (TrainingError, ConfigError, ResumeError, WriteError)
            self.error = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            log.exception("run %s failed", self.run_id)
        finally:
            self.finished_at = time.time()
            if superseded:
                self.recorder.close()
            else:
                self.recorder.end()
        log.info("run %s %s", self.run_id, self.state)
        return self.status()

    def _restore(self) -> None:
        if self._resumption:
            self._resumption.apply(self.models, self.device)
            self.restored_eval_seconds = sum(m.eval_seconds for m in self.models)

    def _train(self, data: MNISTTensors) -> None:
        """The loop: the model furthest behind takes the next step (the curves stay side by side);
        a window of steps makes a curve point, an epoch's end an evaluation and a checkpoint."""
        bar = progress_bar(self.models, self.run_id) if self.progress_bar else None
        self.time_left = TimeLeft(total_images=len(self.models) * self.config.epochs * self.n_train,
                                  epochs=self.config.epochs, eval_images=self.n_eval, models=len(self.models),
                                  done_images=sum(m.samples for m in self.models), evaluations=evaluations(self.models),
                                  closing_seconds=self.recorder.closing_seconds(len(self.models)))
        next_stop_check = time.perf_counter()
        try:
            while not self.stop_event.is_set() and not self.end_reason and (m := self._next_model()) is not None:
                probe = self.layer_stats and m.window_ends(self.n_train, m.step + 1)
                m.train_step(data, self.device, self.precision, probe=probe)
                if self.on_step is not None:
                    self.on_step(self, m)
                if bar is not None:
                    bar.update(1)
                if m.window_ends(self.n_train):
                    epoch_end = m.step % m.batches == 0
                    self.recorder.curve_point(m, epoch_end)
                    if epoch_end:
                        self._end_epoch(m, data)
                    self.recorder.write_status(force=epoch_end)
                    if bar is not None:
                        bar.set_postfix_str(spoken(self.time_left.seconds()), refresh=False)
                if time.perf_counter() >= next_stop_check:
                    next_stop_check = time.perf_counter() + STOP_CHECK_INTERVAL
                    if self.folder.stop_requested():  # a stop from the page, for any process that trains
                        self.stop_event.set()
            if self.stop_event.is_set():
                self.recorder.stopped()
        finally:
            self.recorder.metrics.flush()  # a failing run keeps every line it computed
            if bar is not None:
                bar.close()
        if self.stop_event.is_set():
            self.state = "stopping"
            self.recorder.write_status(force=True)

    def _next_model(self) -> ModelRun | None:
        unfinished = [m for m in self.models if not m.done]
        return min(unfinished, key=lambda r: (r.progress, r.index)) if unfinished else None

    def _end_epoch(self, m: ModelRun, data: MNISTTensors) -> None:
        """Validation and test figures, then checkpoints and pictures. Nothing is recorded if a stop
        comes during the evaluation (no half-evaluated epoch)."""
        started = time.perf_counter()
        val = evaluate(m.model, data.val_x, data.val_y, self.device, self.precision, self.stop_event)
        test = val and evaluate(m.model, data.test_x, data.test_y, self.device, self.precision, self.stop_event)
        seconds = time.perf_counter() - started
        self.eval_seconds += seconds
        if val is not None and test is not None:
            self.recorder.epoch_end(m, val, test, seconds, data)
            self._report(m.step // m.batches, m.index, val.accuracy)

    def _report(self, epoch: int, model_index: int, val_accuracy: float) -> None:
        """A sweep's trial: each epoch's result goes to the study; the pruner's verdict is taken
        before the next epoch starts."""
        if self.reporter is None:
            return
        try:
            self.end_reason = self.reporter.epoch_end(epoch, model_index, val_accuracy)
        except Exception as exc:  # the sweep's journal is unreadable or gone: the run itself goes on
            log.warning("run %s: could not report epoch %d to its sweep (%s: %s); it trains to the end",
                        self.run_id, epoch, type(exc).__name__, exc)
            self.reporter = None



def progress_bar(models: list[ModelRun], run_id: str):
    """The command line's progress bar. tqdm's own "remaining" leaves out the evaluations and
    follows the first, slow steps: the run's estimate replaces it."""
    from tqdm import tqdm
    return tqdm(total=sum(m.total_steps - m.step for m in models), unit="batch", desc=run_id,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]",
                postfix=spoken(None))


def sweep_reporter(folder: Run, models: int, epochs: int):
    """The run's TrialReporter if its facts say it is a trial of a sweep (Optuna is imported only then)."""
    facts = folder.facts()
    if not isinstance(facts.get("sweep"), dict):
        return None
    from sweeps import reporter_for
    return reporter_for(folder.path, facts, models, epochs)


# ---------------------------------------------------------------- command line

FLAG_HELP = {  # run-wide settings; defaults, choices and limits come from config.py
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
    import json

    from sweepdriver import SweepDriver
    from sweeps import SweepStore
    from sweepspec import parse_sweep
    from worker import TrainingManager

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


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    request = {key: getattr(args, key) for key in SHARED_KEYS if getattr(args, key) is not None}
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
