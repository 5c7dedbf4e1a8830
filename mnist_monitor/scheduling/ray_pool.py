"""Runs on Ray: several runs at once, each in a worker process, on this machine (``--workers N``:
a local Ray instance the server starts and stops with itself, on 127.0.0.1 only) or on an
existing Ray cluster (``--ray-address``). Ray only runs the training task; the run folder, the
queue and the liveness stay the run store's, so a run trained by a worker is the same folder,
written the same way, as one trained in the server's thread.

Ray is optional: ``import ray`` happens only when ``RayPool`` is built, and a missing Ray is a
``ClusterError`` that says what to install.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mnist_monitor.config import PROJECT_DIR
from mnist_monitor.runstore.liveness import proc_stat
from mnist_monitor.scheduling.cluster_health import ClusterHealth

log = logging.getLogger("cluster")

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # with it, a local Ray binds to 127.0.0.1 only (Linux)
# Ray settings this server needs, unless the user sets them. With Ray's default (60 s), a process
# whose cluster's control store (GCS) is gone for a minute is ended by Ray: the server with it.
# Waiting (about 11 days) lets the server restart its own instance, or connect again to a cluster
# that is back, and go on serving meanwhile.
RAY_DEFAULT_ENV = {"RAY_gcs_rpc_server_reconnect_timeout_s": "1000000",
                # ray.init installs a C++ handler for SIGTERM that ends the process at once. The
                # server sets its own (a graceful stop) after the first init, but a restart of Ray
                # runs in another thread, where Python cannot set it again.
                "RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}
OBJECT_STORE_BYTES = 100 * 2**20  # the tasks return small dicts: Ray's default (30 % of RAM) is far too much
PROBE_TIMEOUT_S = 60.0  # for the shared-storage check on every node
MIN_RAY = (2, 59)  # requirements-ray.txt's floor, checked at run time too (an older Ray may be installed)


class ClusterError(RuntimeError):
    """Ray is missing, cannot be reached, or its workers cannot see the run folders."""


class TaskLost(RuntimeError):
    """Ray lost a task to the machinery (its worker process or node died, the local instance went
    away), as opposed to the trainer raising or the task being cancelled; the message is Ray's."""


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """ClusterError unless something accepts connections at a ``host:port`` address (other forms,
    such as ``auto`` or ``ray://``, are left to Ray): with GCS reconnection waiting long (see
    import_ray), ray.init would otherwise wait for a cluster that is not there."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, theirs, ...), read from /proc (empty where there is none)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = proc_stat(int(entry.name))
        if fields and len(fields) > 1:  # (None: ended meanwhile)
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def end_processes(pids: list[int], grace: float = 3.0) -> None:
    """Kill those of ``pids`` still running ``grace`` seconds from now. A local Ray instance started
    again by a restart leaves its agent processes running after ray.shutdown (Ray 2.60: they outlive
    the raylet they belong to); the server ends what it started."""
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if running(p)]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    fields = proc_stat(pid)
    return bool(fields) and fields[0] != "Z"


def import_ray():
    """Ray, imported with LOOPBACK_ENV and RAY_DEFAULT_ENV in the environment: Ray reads them when it
    is imported (set later, a local instance's GCS server listens on every address of the machine,
    a lost GCS ends this process after a minute, and a restarted Ray takes over SIGTERM). A
    RAY_DEFAULT_ENV value set by the user is kept."""
    os.environ.update(LOOPBACK_ENV)
    for name, value in RAY_DEFAULT_ENV.items():
        os.environ.setdefault(name, value)
    # When a call to its raylet fails, Ray's driver ends its own process at once if it takes the
    # raylet for dead, and without this it judges so from its *parent* process: a server whose
    # parent is init (started by a service manager, or from a shell that has exited) ended there,
    # in the ray.shutdown() of every restart. With it, it asks whether this process lives.
    os.environ.setdefault("RAY_RAYLET_PID", str(os.getpid()))
    try:
        import ray
    except ImportError:
        raise ClusterError("--workers and --ray-address need Ray: pip install -r requirements-ray.txt") from None
    if version_tuple(getattr(ray, "__version__", "0")) < MIN_RAY:
        raise ClusterError(f"Ray {ray.__version__} is older than {'.'.join(map(str, MIN_RAY))}, the first release whose "
                           "local instance requires a token of its own (before it, any user of this machine could "
                           "run code in it): pip install -r requirements-ray.txt")
    return ray


def version_tuple(version: str) -> tuple[int, ...]:
    """'2.60.1' -> (2, 60, 1); what follows the numbers ('rc1', 'dev0') is left out."""
    parts = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class Placement:
    """Where a run trains and what it may use."""
    threads: int  # torch threads (CPUs asked of Ray)
    gpus: float  # GPUs (or a share of one) asked of Ray; 0 on a machine without


def train_task(run_path: str, data_dir: str, resume: bool, options: dict) -> dict:
    """The Ray task: train one run in its folder to the end (or a stop), in this worker process;
    the final status. Its heartbeat is the run's liveness, as for any trainer."""
    import ray
    import torch

    from mnist_monitor.config import parse_train_config
    from mnist_monitor.runstore import Run
    from mnist_monitor.training.hardware import select_device
    from mnist_monitor.training.trainer import Trainer

    context = ray.get_runtime_context()
    torch.set_num_threads(max(1, int(context.get_assigned_resources().get("CPU", 1))))
    config = parse_train_config(Run(Path(run_path)).config())
    trainer = Trainer(config, data_dir, run_path, resume=resume, device=select_device(config.device),
                      node_id=context.get_node_id(), **options)
    return trainer.run()


def probe_task(marker: str, data_dir: str) -> dict:
    """On one node: can it see the runs folder (the marker the server wrote) and the MNIST folder,
    and write into both (a trainer writes its run folder; MNIST is downloaded where it is missing)?"""
    return {"host": socket.gethostname(), "runs": Path(marker).is_file(), "data": Path(data_dir).is_dir(),
            "runs_writable": can_write(Path(marker).parent), "data_writable": can_write(Path(data_dir))}


def can_write(folder: Path) -> bool:
    """Whether a file can be made (and removed) in ``folder``: tried, not read off its mode bits."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ray-write-check-"):
            return True
    except OSError:
        return False


def check_fits_a_node(nodes: list[dict], gpus_per_run: float) -> None:
    """ClusterError if no single alive node has the GPUs one run asks for: a run is one task on one
    node, so Ray could never place it (it would wait 'starting' forever, and the queue behind it),
    however many GPUs the cluster has in all."""
    if not gpus_per_run:
        return
    alive = [n for n in nodes if n.get("Alive")]
    largest = max(alive, key=lambda n: n.get("Resources", {}).get("GPU", 0), default=None)
    most = largest.get("Resources", {}).get("GPU", 0) if largest else 0
    if gpus_per_run > most:
        where = f" (node {largest.get('NodeManagerAddress') or largest.get('NodeID')})" if largest else ""
        raise ClusterError(f"--gpus-per-run {gpus_per_run:g}: no node has that many; the largest has {most:g} "
                           f"GPU(s){where}, and a run trains on one node")


class RayPool:
    """A connection to Ray that trains runs as tasks; ``capacity`` runs at once."""

    health: ClusterHealth | None = None  # (None in a pool built without __init__, as tests fake one)

    def __init__(self, workers: int | None = None, address: str | None = None, gpus_per_run: float | None = None):
        """``workers``: runs at once (a cluster: by default as many as its GPUs or CPUs allow).
        Ray already initialized in this process (tests) is used as it is, and left running."""
        self.ray = import_ray()
        self.address, self.workers = address, workers
        self.owned = not self.ray.is_initialized()
        if self.owned:
            self._connect()
        resources = self.ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), resources.get("GPU", 0)
        gpus_per_run = (1.0 if gpus else 0.0) if gpus_per_run is None else gpus_per_run
        if gpus_per_run and not gpus:
            log.warning("--gpus-per-run %g: Ray reports no GPU, so runs train on CPUs", gpus_per_run)
            gpus_per_run = 0.0
        try:
            check_fits_a_node(self.ray.nodes(), gpus_per_run)
        except ClusterError:
            self.shutdown()  # a local instance started here goes with the refusal
            raise
        fit = int(gpus // gpus_per_run) if gpus_per_run else cpus  # runs Ray can place at once
        if workers is None:  # a cluster: as many runs as it has GPUs (or shares of one) for, else one a CPU
            workers = fit
        elif workers > fit and self.owned and not address:  # our own instance: more would only wait in Ray's queue
            log.warning("--workers %d: this machine has room for %d run(s) at once (%g GPU(s), %g each); "
                        "using %d", workers, fit, gpus, gpus_per_run, max(1, fit))
            workers = fit
        self.capacity = max(1, workers)
        threads = 1 if address else max(1, cpus // self.capacity)
        self.placement = Placement(threads=threads, gpus=gpus_per_run)
        self._train = self.ray.remote(max_retries=0)(train_task)  # a retry would train again in the same folder
        log.info("Ray %s: %d run(s) at once, %d thread(s) and %g GPU each", address or "on this machine",
                 self.capacity, threads, gpus_per_run)
        # A Ray instance this server started is restarted when it dies, a cluster it connected to
        # is connected to again when it is back; one the process had already (tests) is only watched.
        self.health = ClusterHealth(self._probe, self._restart if self.owned else None)
        self.restart_listeners: list = []  # called with why after a restart (the old tasks are gone)

    def _connect(self) -> None:
        """Start the local instance (--workers) or connect to the cluster (--ray-address)."""
        env = {"PYTHONPATH": str(PROJECT_DIR)}  # the project is at the same path on every node
        try:
            if self.address:
                check_reachable(self.address)
                self.ray.init(address=self.address, runtime_env={"env_vars": env}, log_to_driver=False)
            else:  # room for every worker's threads, also with more workers than cores
                cores = os.cpu_count() or 1
                self.ray.init(address="local", num_cpus=max(cores, self.workers or 1), include_dashboard=False,
                              object_store_memory=OBJECT_STORE_BYTES, runtime_env={"env_vars": env},
                              log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Ray cluster at {self.address}: {exc}" if self.address else
                               f"cannot start a local Ray instance: {exc}") from None

    def _probe(self) -> str | None:
        """None if a node is alive to train on, else why not (the local instance's raylet died, or
        every node of the cluster is gone)."""
        if not any(n.get("Alive") for n in self.ray.nodes()):
            return ("the Ray cluster has no live node" if self.address else
                    "the local Ray instance's node died (its raylet is gone)")
        return None

    def _restart(self) -> None:
        """Leave the Ray that went away and start (or connect to) it again; the training task
        defined on the first one is submitted the same way to the new one."""
        if self.address:
            check_reachable(self.address)  # before ray.shutdown: nothing to connect to yet
        left = self._local_processes()
        self.ray.shutdown()
        end_processes(left)
        self._connect()
        why = f"connected again to the Ray cluster at {self.address}" if self.address else "the Ray instance was restarted"
        for listener in self.restart_listeners:
            listener(why)

    def _local_processes(self) -> list[int]:
        """The processes of the local instance this server started (its GCS server, raylet, ...
        and theirs, such as the agents); none for a cluster, or where Ray does not say."""
        node = getattr(getattr(self.ray, "_private", None) and self.ray._private.worker, "_global_node", None)
        if self.address or node is None:
            return []
        roots = [info.process.pid for infos in node.all_processes.values() for info in infos
                 if getattr(info, "process", None) is not None]
        return roots + [pid for root in roots for pid in descendants(root)]

    def task_lost(self, what: str) -> None:
        """A task was lost to the machinery: look at the cluster now (and restart it if it is gone)."""
        if self.health is not None:
            self.health.lost(what)

    def available(self) -> str | None:
        """None if runs can be handed to Ray now, else why not (this never waits for Ray)."""
        return self.health.available() if self.health is not None else None

    def submit(self, run_path: Path, data_dir: str, resume: bool, options: dict):
        """Hand one run to Ray; the task's reference (``wait`` it)."""
        return self._train.options(num_cpus=self.placement.threads, num_gpus=self.placement.gpus).remote(
            str(run_path), str(data_dir), resume, options)

    def wait(self, ref) -> tuple[str | None, dict | None]:
        """Block until the task ends: (None, the trainer's final status) if it returned, else (what
        Ray reported: a worker process killed, a node gone, the task cancelled; None)."""
        try:
            return None, self.ray.get(ref)
        except Exception as exc:  # the trainer's exception (RayTaskError), or Ray's own: a worker or node lost...
            what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if not isinstance(exc, (self.ray.exceptions.RayTaskError, self.ray.exceptions.TaskCancelledError)):
                raise TaskLost(what) from None
            return what, None

    def check_shared_storage(self, runs_dir: Path, data_dir: str) -> None:
        """ClusterError unless every alive node sees the runs folder and the MNIST folder at the
        paths this server uses (runs are written there by whichever node trains them)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        marker = Path(runs_dir) / f".ray-check-{secrets.token_hex(4)}"
        marker.write_text("the server checks that Ray's workers see this folder\n")
        try:
            probe = self.ray.remote(max_retries=0)(probe_task)
            nodes = [n for n in self.ray.nodes() if n.get("Alive")]
            refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                n["NodeID"], soft=False)).remote(str(marker), str(data_dir)) for n in nodes]
            answers = self.ray.get(refs, timeout=PROBE_TIMEOUT_S)
        finally:
            marker.unlink(missing_ok=True)
        blind = [a["host"] for a in answers if not a["runs"]]
        no_data = [a["host"] for a in answers if not a["data"]]
        if blind:
            raise ClusterError(f"Ray node(s) {', '.join(blind)} cannot see the runs folder {runs_dir}: it must be "
                               "shared storage at the same path on every node")
        if no_data:
            raise ClusterError(f"Ray node(s) {', '.join(no_data)} have no MNIST folder at {data_dir}: put it at "
                               "the same path on every node (shared storage)")
        for key, folder in (("runs_writable", runs_dir), ("data_writable", data_dir)):
            if read_only := [a["host"] for a in answers if not a[key]]:
                raise ClusterError(f"Ray node(s) {', '.join(read_only)} cannot write into {folder}: its trainers "
                                   "write there, so it must be writable on every node")

    def cancel(self, ref) -> None:
        try:
            self.ray.cancel(ref, force=True)
        except Exception:  # already ended
            log.debug("cancel of an ended task", exc_info=True)

    def shutdown(self) -> None:
        """Disconnect; a local instance (--workers) is stopped with its worker processes."""
        if self.health is not None:
            self.health.close()  # no more looks or restarts; its thread is ended last (below)
        if self.owned:
            left = self._local_processes()
            self.ray.shutdown()
            end_processes(left)
        if self.health is not None:
            self.health.end()
