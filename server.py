"""MNIST Training Monitor web server: the app factory and the command line.

Run: ``python server.py`` and open http://127.0.0.1:5000.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path

from flask import Flask

from mnist_monitor import web
from mnist_monitor.classroom.fair_share import in_flight, next_in_turn
from mnist_monitor.classroom.roster import ClassFileError, Roster, check_code
from mnist_monitor.config import DEFAULT_KEEP_RUNS, DEFAULT_RUNS_DIR, PROJECT_DIR, default_data_dir, parse_train_config
from mnist_monitor.export.run_zip import MAX_ZIP_BYTES
from mnist_monitor.inference.predict import CheckpointCache
from mnist_monitor.runstore import RunStore
from mnist_monitor.scheduling.manager import TrainingManager
from mnist_monitor.scheduling.ray_pool import ClusterError, RayPool
from mnist_monitor.sweeps.driver import SweepDriver
from mnist_monitor.sweeps.folder import SweepStore
from mnist_monitor.training.hardware import tune_malloc
from mnist_monitor.training.trainer import Trainer
from mnist_monitor.web import security

log = logging.getLogger("server")

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # a drawn digit as PNG is ~10-50 KB; configs are tiny
SHUTDOWN_WAIT = 7.0  # seconds to wait for the active run to stop on SIGTERM or Ctrl-C (then up to 5 s
# for the request threads): the process is gone within the 10 s a service manager usually allows


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder=str(PROJECT_DIR / "static"), static_url_path="/static")
    app.config.update(DATA_DIR=default_data_dir(), RUNS_DIR=str(DEFAULT_RUNS_DIR), KEEP_RUNS=DEFAULT_KEEP_RUNS,
                      ALLOWED_HOSTS=list(security.LOCAL_HOSTS), TRAINER_OPTIONS={},
                      MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES)
    app.config.update(test_config or {})
    app.json.sort_keys = False  # answers keep the contract's field order
    if app.config.get("CLASS"):  # first: a damaged class file stops the start before anything runs
        app.extensions["class"] = Roster(app.config["RUNS_DIR"], code=app.config.get("CLASS_CODE"))
        app.config["TOKEN"] = app.config.get("TOKEN") or secrets.token_urlsafe(24)  # the teacher's
    store = RunStore(app.config["RUNS_DIR"], keep=app.config["KEEP_RUNS"], check_config=parse_train_config)
    store.cleanup()  # --keep-runs applies from the start, not only after the next run
    store.remove_stale_temp_files()
    app.extensions.update(training=TrainingManager(store, app.config["DATA_DIR"], app.config["TRAINER_OPTIONS"],
                                                   pool=app.config.get("RAY_POOL"), trainer_class=Trainer),
                          runs=store, checkpoints=CheckpointCache())
    app.extensions["sweeps"] = SweepStore(app.config["RUNS_DIR"])
    app.extensions["sweep_driver"] = SweepDriver(app.extensions["sweeps"], app.extensions["training"])
    if app.config.get("CLASS"):  # the workers are shared round-robin across the class (classroom.fair_share)
        roster = app.extensions["class"]
        app.extensions["training"].next_in_turn = lambda queued: next_in_turn(store.snapshots(), queued,
                                                                               roster.limits_of)
        app.extensions["sweep_driver"].in_flight_limit = lambda owner: in_flight(roster.limits_of(owner))
    web.init_app(app)
    app.extensions["training"].start_next()  # runs queued before a restart go on
    app.extensions["sweep_driver"].start()  # sweeps left running go on (a trial cut off is resumed)
    return app


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="MNIST Training Monitor: train CNNs and watch them live.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; anything else exposes training to the network)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--data-dir", default=default_data_dir(),
                   help="folder that holds MNIST/raw/ (env MNIST_DATA_DIR; default: the project's data/, "
                        "downloaded there if missing)")
    p.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR), help="where run folders are kept "
                                                                     "(default: the project's runs/)")
    p.add_argument("--keep-runs", type=int, default=DEFAULT_KEEP_RUNS,
                   help=f"keep the newest N runs (0: keep all; default {DEFAULT_KEEP_RUNS})")
    p.add_argument("--allowed-host", action="append", default=[],
                   help="extra Host name the server answers to (repeatable; '*' for any)")
    p.add_argument("--threads", type=int, default=8, help="request threads of the WSGI server")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="train up to N runs at once, each in a worker process of a local Ray instance that starts "
                        "and stops with the server and listens on 127.0.0.1 only (needs Ray: pip install -r "
                        "requirements-ray.txt); default: one run at a time in the server's own thread")
    p.add_argument("--gpus-per-run", type=gpu_share, metavar="G",
                   help="with --workers or --ray-address: the GPUs each run gets, or a share of one (0.25: four runs "
                        "per GPU); default 1 where Ray sees a GPU")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"), metavar="ADDRESS",
                   help="train on an existing Ray cluster (env RAY_ADDRESS), wherever it has room; for a cluster on a "
                        "trusted network only, as Ray's documentation advises. The runs folder, the MNIST "
                        "folder and this project with its Python environment must be at the same paths on every node")
    p.add_argument("--token", help="access token every request must carry (default: none on a loopback address, "
                                   "a random one printed at start-up on any other); with --class, the teacher's")
    p.add_argument("--class", dest="class_mode", action="store_true",
                   help="run a class: students join with a class code and a name, each sees and changes their own "
                        "runs; the teacher's link (printed) may do everything. The class is kept in the runs folder")
    p.add_argument("--class-code", metavar="CODE", type=class_code,
                   help="with --class: the code students join with (default: the one kept from the last start, "
                        "else a new random one, printed)")
    return p


def class_code(text: str) -> str:
    try:
        return check_code(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def gpu_share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 64:
        raise argparse.ArgumentTypeError(f"must be greater than 0 and at most 64, got {text}")
    return value


def ray_pool(args):
    """The Ray pool that --workers or --ray-address asks for, or None; ClusterError says what is wrong."""
    if not (args.workers or args.ray_address):
        if args.gpus_per_run:
            raise ClusterError("--gpus-per-run needs --workers or --ray-address")
        return None
    pool = RayPool(workers=args.workers, address=args.ray_address, gpus_per_run=args.gpus_per_run)
    if args.ray_address:
        try:
            pool.check_shared_storage(Path(args.runs_dir).resolve(), args.data_dir)
        except BaseException:
            pool.shutdown()
            raise
    return pool


def stop_gracefully(manager: TrainingManager) -> None:
    """On SIGTERM or Ctrl-C: the active run stops at its next batch (it ends 'stopped', resumable
    from its last epoch-end checkpoint; queued runs stay queued) while the server goes on answering
    (409 to a start or resume, reads as usual); once the run has stopped, or after SHUTDOWN_WAIT
    seconds, the server loop ends. A second Ctrl-C ends it at once."""
    run_stopped = threading.Event()

    def finish() -> None:  # in a thread of its own: the signal handler must not hold up the server's loop
        if not manager.wait(SHUTDOWN_WAIT):
            log.warning("the run did not stop within %.0f s; exiting anyway (it will show as interrupted)",
                        SHUTDOWN_WAIT)
        run_stopped.set()
        # a real signal to the main thread: it wakes the server loop's select() at once (interrupt_main
        # would wait for its 1-s timeout), and the handler below, run there, leaves the loop
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def handler(signum, frame):
        if run_stopped.is_set():
            raise SystemExit(0)  # waitress closes its sockets and request threads on SystemExit
        if manager.closing:  # a second Ctrl-C: no more waiting
            raise SystemExit(1)
        log.info("%s: stopping the active run, then exiting", signal.Signals(signum).name)
        manager.begin_shutdown()
        threading.Thread(target=finish, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


WILDCARD_HOSTS = ("0.0.0.0", "::")  # every address of the machine


def page_hosts(host: str) -> list[str]:
    """The host names the page can be opened at: ``host`` itself, or for a wildcard address the
    machine's name and each of its addresses that is not loopback or link-local (as Jupyter
    prints its URLs); every one of them passes the Host check."""
    if host not in WILDCARD_HOSTS:
        return [host]
    names = [socket.gethostname()]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM)
    except OSError:  # a name that does not resolve: the name alone
        infos = []
    for family, _, _, _, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
        wanted = socket.AF_INET6 if host == "::" else socket.AF_INET
        if family == wanted and not (ip.is_loopback or ip.is_link_local) and str(ip) not in names:
            names.append(str(ip))
    return names


def page_address(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    allowed = set(security.LOCAL_HOSTS) | {h.lower() for h in args.allowed_host}
    hosts = page_hosts(args.host)
    if args.host not in security.LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this address and has the access token can start and "
                    "stop training", args.host)
        allowed |= {h.lower() for h in hosts} | {socket.gethostname().lower()}
    if args.class_code and not args.class_mode:
        print("error: --class-code needs --class", file=sys.stderr)
        return 2
    token = args.token or (None if args.host in security.LOCAL_HOSTS and not args.class_mode
                           else secrets.token_urlsafe(24))
    Path(args.runs_dir).mkdir(parents=True, exist_ok=True)
    try:
        pool = ray_pool(args)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app({"DATA_DIR": args.data_dir, "RUNS_DIR": args.runs_dir, "KEEP_RUNS": args.keep_runs,
                          "ALLOWED_HOSTS": sorted(allowed), "TRAINER_OPTIONS": {"progress_bar": pool is None},
                          "TOKEN": token, "RAY_POOL": pool, "CLASS": args.class_mode, "CLASS_CODE": args.class_code})
    except ClassFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if pool is not None:
            pool.shutdown()
        return 2
    tune_malloc()
    import waitress
    stop_gracefully(app.extensions["training"])
    addresses = [page_address(h, args.port, token) for h in hosts]
    log.info("MNIST Training Monitor on %s (data %s, runs %s)", ", ".join(addresses), args.data_dir, args.runs_dir)
    for address in addresses:
        print(f"{'Teacher: open' if args.class_mode else 'Open'} {address}", flush=True)
    if args.class_mode:
        print(f"Class code: {app.extensions['class'].code} (students open "
              f"{page_address(hosts[0], args.port, None)} and type it with their name)", flush=True)
    try:
        # Refused as soon as the length is known: a run's zip (POST /runs/import) up to 256 MiB; the app
        # holds every other route to MAX_REQUEST_BYTES.
        waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="mnist-monitor",
                       max_request_body_size=MAX_ZIP_BYTES)
    finally:
        app.extensions["sweep_driver"].close()  # no trial is asked for or started past this point
        if pool is not None:
            pool.shutdown()  # a local instance goes with its worker processes
    return 0


def leave(code: int) -> None:
    """Exit with ``code`` once the logs and output are flushed, skipping the interpreter's teardown:
    with torch loaded it takes about 1 s of CPU on a 2-core machine and writes nothing. Everything
    the server owns (runs, Ray, request threads) has been ended by then."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
