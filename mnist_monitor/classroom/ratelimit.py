"""Limits on how often, a minute: wrong class codes (at most ``per_address`` from one address and
``overall`` from all addresses together; only wrong codes count: a class behind one address, a
school's network, joins with the right code however many students it has), and a student's
predictions (each reads a digit with every model of a run: heavy on a small machine)."""
from __future__ import annotations

import collections
import threading
import time

WINDOW_SECONDS = 60.0


class WrongCodes:
    def __init__(self, per_address: int = 10, overall: int = 60, window: float = WINDOW_SECONDS, clock=time.monotonic):
        self.per_address, self.overall, self.window, self.clock = per_address, overall, window, clock
        self._times: collections.deque[tuple[float, str]] = collections.deque()
        self._lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        while self._times and self._times[0][0] <= now - self.window:
            self._times.popleft()

    def retry_after(self, address: str) -> int:
        """Seconds until a wrong code from ``address`` is looked at again; 0 if it is now."""
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            mine = [t for t, a in self._times if a == address]
            if len(mine) >= self.per_address:
                return max(1, round(mine[-self.per_address] + self.window - now + 0.5))
            if len(self._times) >= self.overall:
                return max(1, round(self._times[-self.overall][0] + self.window - now + 0.5))
            return 0

    def count(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            self._times.append((now, address))


class PerMinute:
    """At most ``limit(key)`` events a minute for each key (a student); ``limit`` returns None for no limit."""

    def __init__(self, window: float = WINDOW_SECONDS, clock=time.monotonic):
        self.window, self.clock = window, clock
        self._times: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def take(self, key: str, limit: int | None) -> int:
        """0 and the event counted if ``key`` is under ``limit``; else the seconds until it is."""
        with self._lock:
            now = self.clock()
            times = self._times.setdefault(key, collections.deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if limit is not None and len(times) >= limit:
                return max(1, round(times[-limit] + self.window - now + 0.5))
            times.append(now)
            return 0
