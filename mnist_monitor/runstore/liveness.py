"""Is a run being trained right now? Decided here, once, from its heartbeat.

A trainer, wherever it runs, claims a run (an attempt number and a random owner token, written
once) and then refreshes a heartbeat every HEARTBEAT_INTERVAL_S from a thread of its own, so a
long training step or an evaluation never delays it. A run whose last beat is older than
HEARTBEAT_LIMIT_S is no longer trained. Beats carry the writer's wall clock, so the machines that
train and serve a runs folder on shared storage need clocks that agree to a second or so (NTP).

On the host that trains, a beat also says which process writes it: its PID and that process's
start time, so a process that is gone, or a PID reused by another program, is seen at once
instead of after the limit (a restarted server shows the run it was training as interrupted
immediately).
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0  # a beat a second: at most one small rename a second per run
HEARTBEAT_LIMIT_S = 6.0  # seconds without a beat after which a run counts as interrupted (six beats missed)


def _boot_id() -> str:
    """This boot of this machine (Linux); a PID means something only within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    """This process's PID namespace (Linux): containers that share a host name and a boot but not
    their PIDs must not read each other's PIDs."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


HOST = f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}"  # where a beat's PID means something


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, parent, ...; Linux), or None if
    there is no such process or the platform does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:  # the command name is in parentheses and may hold spaces
        return stat[stat.rindex(b")") + 2:].decode("ascii", "replace").split()
    except ValueError:
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux); None if there is no such
    process or the platform does not say."""
    fields = proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def pid_alive(pid) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Claim:
    """Who trains a run now: written once when a trainer starts or resumes it."""
    attempt: int  # 1 for the first start, +1 for each resume
    owner: str  # random, per trainer: two trainers never share it
    claimed_at: float


@dataclass(frozen=True)
class Beat:
    """A heartbeat: the claim it belongs to, when it was written, and which process wrote it."""
    attempt: int
    owner: str
    beat_at: float  # Unix seconds, the writer's clock
    host: str  # host name and boot id
    pid: int
    pid_start: int | None  # the process's start time (clock ticks since boot), None off Linux

    def to_dict(self) -> dict:
        return asdict(self)


def beat_from(data) -> Beat | None:
    """A Beat from parsed JSON, or None if it is not one (a torn or foreign file counts as no beat)."""
    try:
        return Beat(**data) if isinstance(data, dict) else None
    except TypeError:
        return None


def writer_gone(host: str, pid, pid_start) -> bool:
    """Whether the process that wrote a beat (or a status) on ``host`` is certainly gone: only
    decidable on that host, by its PID and that process's start time."""
    if host != HOST:
        return False
    if not pid_alive(pid):
        return True
    return pid_start is not None and process_start(pid) not in (None, pid_start)


def is_alive(claim: Claim | None, beat: Beat | None, now: float | None = None) -> bool:
    """Whether the trainer that holds ``claim`` is alive: it beat within HEARTBEAT_LIMIT_S, and
    (on this host) its process is still the one that beat."""
    now = time.time() if now is None else now
    if beat is None or (claim is not None and beat.owner != claim.owner):  # no beat of this claim yet
        return claim is not None and now - claim.claimed_at <= HEARTBEAT_LIMIT_S
    if writer_gone(beat.host, beat.pid, beat.pid_start):
        return False
    return now - beat.beat_at <= HEARTBEAT_LIMIT_S


def this_process_beat(claim: Claim) -> Beat:
    return Beat(claim.attempt, claim.owner, time.time(), HOST, os.getpid(), process_start(os.getpid()))


class Heartbeat:
    """The thread that beats for one claim until ``stop()``. Before each beat it reads the claim on
    disk: if another trainer has claimed the run since (a resume after this one was taken for
    dead), it stops beating and calls ``on_superseded`` (the trainer stops without writing)."""

    def __init__(self, claim: Claim, read_claim, write_beat, on_superseded, handover: bool = False):
        """``handover``: beats that hold a run for a trainer on its way, whose claim is expected."""
        self.claim, self.handover = claim, handover
        self._read_claim, self._write_beat, self._on_superseded = read_claim, write_beat, on_superseded
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._write_beat(this_process_beat(self.claim))  # the first beat before anyone looks
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(HEARTBEAT_INTERVAL_S):
            try:
                current = self._read_claim()
                if current is not None and current.owner != self.claim.owner:
                    (log.debug if self.handover else log.warning)("attempt %d of this run was superseded by attempt %d; stopping without writing",
                                self.claim.attempt, current.attempt)
                    self._on_superseded()
                    return
                self._write_beat(this_process_beat(self.claim))
            except Exception:  # a full disk or a vanished folder: the next beat tries again
                log.debug("heartbeat failed", exc_info=sys.exc_info())

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
