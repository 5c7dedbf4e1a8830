"""Whether Ray can take runs now, answered without waiting, and the restart of a Ray instance that
went away (its raylet killed, say by the kernel's out-of-memory killer, or its cluster lost).

A look asks the cluster whether a node is alive, in a thread of its own: a cluster that is gone
can block such a call for as long as it is gone, and the answer is asked by every status poll and
every start. A look that finds the cluster lost (or one that has not answered for
``LOOK_TIMEOUT`` seconds) starts a restart in the background: tried at once, then after 2, 4, 8,
16, 32 and every 60 seconds, until the cluster answers again. Meanwhile ``available()`` says why
the workers are unavailable, so a start is refused (503) and queued runs wait in line."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("cluster")

LOOK_EVERY = 2.0  # seconds between looks while it is asked (a look costs one call to the cluster's control store)
LOOK_TIMEOUT = 5.0  # a look that has not answered by then counts as a lost cluster
BACKOFF = (2.0, 4.0, 8.0, 16.0, 32.0, 60.0)  # seconds before restart tries 2, 3, ...; the last one repeats


class ClusterHealth:
    """``probe()``: None if the cluster can take runs, else why not (it may block, or raise).
    ``restart()``: bring it back (restart a local instance, reconnect to a cluster); raises if it
    could not. Without ``restart`` (a Ray this process did not start), looks go on until the
    cluster answers again by itself."""

    def __init__(self, probe: Callable[[], str | None], restart: Callable[[], None] | None,
                 clock: Callable[[], float] = time.monotonic, backoff: tuple[float, ...] = BACKOFF):
        self.probe, self.restart, self.clock, self.backoff = probe, restart, clock, backoff
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._last_look = -float("inf")
        self._look: threading.Thread | None = None
        self._look_started = 0.0
        self._generation = 0  # a look begun before a restart is not waited for, nor heard, after it
        # Restarts run in one thread that lives as long as this object: the processes of a local
        # instance that ray.init starts die with the thread that started them (Ray has the kernel
        # kill them when it ends), so a thread per restart left a dead instance behind it.
        self._recovery: threading.Thread | None = None
        self._lost_reason: str | None = None  # set: a restart is wanted or under way
        self._wanted = threading.Event()
        self._closed = threading.Event()
        self.restarts = 0  # restarts that brought the cluster back

    def available(self) -> str | None:
        """None if runs can be handed to Ray now, else why not (from the last look, at most
        ``LOOK_EVERY`` seconds old: this never waits for the cluster)."""
        with self._lock:
            now = self.clock()
            looking = self._look is not None and self._look.is_alive()
            if looking and now - self._look_started > LOOK_TIMEOUT and not self._recovering():
                self._lose(f"the Ray cluster has not answered for {LOOK_TIMEOUT:.0f} s")
            elif not looking and not self._recovering() and now - self._last_look >= LOOK_EVERY:
                self._start_look(now)
            return self._reason

    def lost(self, what: str) -> None:
        """A task was lost to the machinery (``what`` Ray said): unavailable until a look, taken
        now, finds the cluster well (a single killed worker) or a restart brings it back."""
        with self._lock:
            if self._reason is None:
                log.info("a Ray task was lost (%s); checking the cluster", what)
                self._reason = f"a Ray task was lost ({what}); checking the cluster"
            if not (self._look is not None and self._look.is_alive()) and not self._recovering():
                self._start_look(self.clock())

    def close(self) -> None:
        """No more looks or restarts (the pool shuts down); ``end()`` once Ray is shut down."""
        self._closed.set()

    def end(self) -> None:
        """End the restarts' thread, after Ray is shut down: the processes of an instance it started
        are bound to it (Ray asks the kernel to kill them when the thread that started them ends), and
        killed so they would orphan their own children (the agents, which outlive them)."""
        self._closed.set()
        self._wanted.set()
        # (a look may wait on a lost cluster for good: it is a daemon thread, left to end with the process)
        if self._recovery is not None and self._recovery is not threading.current_thread():
            self._recovery.join(timeout=LOOK_TIMEOUT)

    # ---------------------------------------------------------------- inside
    def _recovering(self) -> bool:
        return self._lost_reason is not None

    def _start_look(self, now: float) -> None:
        self._last_look = self._look_started = now
        self._look = threading.Thread(target=self._do_look, args=(self._generation,), name="cluster-look",
                                      daemon=True)
        self._look.start()

    def _ask(self) -> str | None:
        try:
            return self.probe()
        except Exception as exc:  # Ray's own errors: a lost connection, a dead raylet...
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    def _timed_ask(self) -> str | None:
        """``_ask`` in a thread of its own, given up after ``LOOK_TIMEOUT`` seconds (a cluster that
        is gone can block the call for as long as it is gone)."""
        answer: list[str | None] = []
        thread = threading.Thread(target=lambda: answer.append(self._ask()), name="cluster-look", daemon=True)
        thread.start()
        thread.join(LOOK_TIMEOUT)
        return answer[0] if answer else f"the Ray cluster has not answered for {LOOK_TIMEOUT:.0f} s"

    def _do_look(self, generation: int) -> None:
        reason = self._ask()
        with self._lock:
            if self._closed.is_set() or self._recovering() or generation != self._generation:
                return
            if reason is not None:
                self._lose(reason)
            elif self._reason is not None:
                log.info("Ray workers are available again")
                self._reason = None

    def _lose(self, reason: str) -> None:
        """(lock held) The cluster is lost: say why, and bring it back in the background."""
        if self._closed.is_set():
            return
        log.warning("Ray workers are unavailable: %s", reason)
        self._reason = reason
        if self._lost_reason is None:
            self._lost_reason = reason
            if self._recovery is None:
                self._recovery = threading.Thread(target=self._recoveries, name="cluster-restart", daemon=True)
                self._recovery.start()
            self._wanted.set()

    def _recoveries(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closed.is_set():
                return
            self._recover(self._lost_reason)

    def _recover(self, reason: str) -> None:
        tries = 0
        while not self._closed.is_set():
            tries += 1
            problem = None
            if self.restart is not None:
                log.warning("restarting Ray (try %d): %s", tries, reason)
                try:
                    self.restart()
                except Exception as exc:
                    problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            problem = problem or self._timed_ask()
            if problem is None:
                with self._lock:  # a look still waiting on the lost cluster is forgotten
                    self._reason, self._last_look, self._look = None, self.clock(), None
                    self._lost_reason = None
                    self._generation += 1
                    self.restarts += self.restart is not None
                log.info("Ray workers are available again%s", " (restarted)" if self.restart else "")
                return
            wait = self.backoff[min(tries - 1, len(self.backoff) - 1)]
            with self._lock:
                self._reason = f"{reason}; {'restart' if self.restart else 'look'} {tries} failed ({problem}), " \
                               f"next in {wait:g} s"
            log.warning("Ray is still unavailable after try %d (%s); next try in %g s", tries, problem, wait)
            self._closed.wait(wait)
