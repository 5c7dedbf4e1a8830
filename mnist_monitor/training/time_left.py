"""A run's time left: its pace in wall-clock seconds, lately, and "estimating" until that pace is
steady.

The run's models take turns on one device, so the run advances by training images (all models
together) and by evaluations (each model once an epoch). The pace of training is measured on the
wall clock without the evaluations, over the later half of this attempt's training time: the
first steps are slower (warm-up, the picture renderer starting beside the run) and would make the
estimate too long early on; work that holds part of the machine for a while shows in the pace
once it has lasted half as long as the run so far (a pace that is not steady counts its last
quarter when that is faster: a warm-up that ended). An evaluation lasts as long as the latest one
measured of the same model (the first is slower: set-up once); before its first, as long as the
other models' latest, or, before any, as long as its images take to go forward at the training
pace (of the models together).

Until the pace is steady (the last quarter of the training time agrees with the later half within
``STEADY``), and at least ``MIN_SECONDS`` of training were measured, the estimate is None
("estimating"); from ``SURE_FROM`` of the attempt's images on it is always given. Once given, it is
given from then on.
"""
from __future__ import annotations

import bisect
import time
from typing import Callable

FORWARD_SHARE = 0.22  # an evaluation's seconds per image over a training step's (forward only, batches
# of 2,000): measured 0.21 for [16,32,32,32] and 0.23 for [32,64,64,64] on a 2-core EPYC; the first
# evaluation measured replaces this guess
MIN_SECONDS = 10.0  # of training measured before the estimate is given on a steady pace: under load
# the first seconds can be slow for 6 s at a pace that looks steady (+74 % at 9 % of a run, measured)
STEADY = 0.10  # the last quarter's pace within 10 % of the later half's: the estimate is given
SURE_FROM = 0.10  # from 10 % of the images on the estimate is given, steady or not
CLOSING_SECONDS_PER_MODEL = 0.4  # a run with pictures ends once the renderer has drawn its last ones:
# 0.5-1.1 s for the two default models after their last evaluation, measured on this 2-core CPU


class TimeLeft:
    """Seconds left of one attempt at a run. ``observe`` after steps (at each curve point),
    ``evaluated`` after each epoch-end evaluation; ``seconds`` then says the time left, or None
    while estimating. ``evaluations``: per model, the evaluations done and their seconds when the
    attempt begins (a resume's; default none). ``clock``: seconds, monotonic (tests pass a fake one)."""

    def __init__(self, total_images: int, epochs: int, eval_images: int, models: int, done_images: int = 0,
                 evaluations: list[tuple[int, float]] | None = None, closing_seconds: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.total_images = total_images  # training images of the run, all models together
        self.epochs = epochs  # each model evaluates once an epoch
        self.eval_images = eval_images  # images one evaluation goes through
        self.closing_seconds = closing_seconds  # after the last evaluation (the last pictures drawn)
        self.clock = clock
        self.started = clock()
        self.first_images = done_images  # images done when this attempt began (a resume: more than 0)
        self.times: list[float] = []  # training seconds of this attempt (evaluations left out) ...
        self.images: list[int] = []  # ... and images done then, at each observation
        self.evaluations = list(evaluations or [(0, 0.0)] * models)  # per model: evaluations done, their seconds
        self.last_eval: dict[int, float] = {}  # per model: seconds of its latest evaluation measured
        self.trusted = False  # an estimate was given: it is not taken back ("estimating" does not flicker)

    def observe(self, images: int, attempt_eval_seconds: float) -> None:
        """``images`` done (all models), and the wall seconds of this attempt's evaluations."""
        training = self.clock() - self.started - attempt_eval_seconds
        if self.times and (training <= self.times[-1] or images <= self.images[-1]):
            return  # nothing new to measure
        self.times.append(training)
        self.images.append(images)

    def evaluated(self, evaluations: list[tuple[int, float]]) -> None:
        """Per model, the evaluations done and their seconds (earlier attempts included), at each
        epoch end: the estimate counts an evaluation as soon as it is done."""
        for model, ((done, seconds), before) in enumerate(zip(evaluations, self.evaluations)):
            if done > before[0]:  # the first evaluation is slower (one-time set-up): the latest counts
                self.last_eval[model] = (seconds - before[1]) / (done - before[0])
        self.evaluations = list(evaluations)

    def _pace(self, times: list[float], images: list[int], since: float) -> float | None:
        """Training seconds per image from training time ``since`` on (None: not measured)."""
        i = min(bisect.bisect_left(times, since), len(times) - 2)
        if i < 0 or images[-1] == images[i]:
            return None
        return (times[-1] - times[i]) / (images[-1] - images[i])

    def seconds(self) -> float | None:
        """Seconds left (evaluations included), or None while the pace is not known well enough.
        Safe to call from another thread than the one that observes."""
        n = len(self.images)  # appended after ``times``: both hold n observations
        times, images = self.times[:n], self.images[:n]
        if n < 2:
            return None
        now = times[-1]
        half, quarter = self._pace(times, images, now / 2), self._pace(times, images, now * 3 / 4)
        if half is None or quarter is None:
            return None
        left_at_start = self.total_images - self.first_images
        done = (images[-1] - self.first_images) / left_at_start if left_at_start > 0 else 1.0
        steady = now >= MIN_SECONDS and abs(quarter - half) <= STEADY * half
        if not (self.trusted or steady or done >= SURE_FROM):
            return None
        self.trusted = True
        # not steady: the faster of the two. The warm-up ending makes the latest quarter faster (it
        # counts); a passing load (another run's start) makes it slower for a while, and a pace that
        # followed it said 3 min 12 s for 18 s (seen with two runs on this 2-core CPU); a load that
        # stays shows in the later half soon enough
        pace = half if steady else min(quarter, half)
        # a model not evaluated yet: as long as the others' (measured on this machine), else a guess
        measured = list(self.last_eval.values())
        guess = sum(measured) / len(measured) if measured else self.eval_images * pace * FORWARD_SHARE
        evaluations = sum(max(0, self.epochs - done) * self.last_eval.get(m, seconds / done if done else guess)
                          for m, (done, seconds) in enumerate(self.evaluations))
        return max(0, self.total_images - images[-1]) * pace + evaluations + self.closing_seconds


def spoken(seconds: float | None) -> str:
    """'time left ≈ 1 min 7 s' as the page says it, or 'time left: estimating'."""
    if seconds is None:
        return "time left: estimating"
    s = round(seconds)
    text = f"{s} s" if s < 60 else f"{s // 60} min {s % 60} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60} min"
    return f"time left ≈ {text}"
