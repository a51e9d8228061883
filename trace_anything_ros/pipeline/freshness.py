"""Window scheduling policy of the worker (``window.policy``). ROS-free.

``throughput`` (the FrameIngest as is): when the worker is free it takes the newest complete window at once. With a
model slower than the stream the worker is always busy, so that window's newest frame has usually been waiting
already: on average half a frame period (17 ms at 30 Hz; 30 ms median measured on the 2-core reference machine
under load), which counts as node overhead in the end-to-end latency.

``latency``: ``LatencyFirstWindows`` wraps the ingest. When the window it gets has waited longer than
``fresh_age`` it waits (event-driven, on the ingest's own condition) for the next window, up to ``periods`` (2.5)
frame periods (estimated from the window's own arrivals, capped at ``max_wait``), and processes that one instead; the
skipped window is counted as ``stale_window`` (superseded), like the windows the ingest replaces while the worker is
busy. Output latency then starts when the newest frame arrives; the price is up to one frame period of idle worker
per window (about 6 % fewer windows per second for a 250 ms model at 30 Hz). 2.5 periods, not 1: a frame lost on the
way (best-effort camera QoS, a loaded machine) does not make the worker give up on the one after it. If no newer
window comes in time (stream stopped or slowed) the waiting window is processed after all. Frames of the skipped
window that the newer window does not hold (with stride 1: its oldest frame) are counted as used although no window
processed them.
"""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from .frames import STALE_WINDOW, Frame, FrameIngest

POLICIES = ("throughput", "latency")


class LatencyFirstWindows:
    """A FrameIngest as the WindowWorker sees it (``take_window`` with the latency-first policy; every other
    attribute is the ingest's)."""

    def __init__(self, ingest: FrameIngest, max_wait: float = 0.2, fresh_age: float = 0.004, periods: float = 2.5):
        self.ingest = ingest
        self.max_wait = float(max_wait)
        self.periods = float(periods)
        self.fresh_age = float(fresh_age)
        self.skipped = 0  # windows given up for a newer one
        self.waited_s = 0.0  # total seconds spent waiting for those

    def __getattr__(self, name):
        return getattr(self.ingest, name)

    def _period(self, win: List[Frame]) -> float:
        arr = np.diff([f.arrival for f in win])
        arr = arr[arr > 0]
        return float(np.median(arr)) / max(1, getattr(self.ingest.window, "stride", 1)) if arr.size else self.max_wait

    def take_window(self, timeout: float, now: Optional[float] = None) -> Optional[List[Frame]]:
        win = self.ingest.take_window(timeout, now=now)
        if win is None:
            return None
        t = time.monotonic() if now is None else now
        if t - win[-1].arrival <= self.fresh_age:
            return win
        wait = min(self.max_wait, self.periods * self._period(win))
        t0 = time.monotonic()
        newer = self.ingest.take_window(wait)
        if newer is None:
            return win
        self.ingest.drops.add(STALE_WINDOW)
        self.skipped += 1
        self.waited_s += time.monotonic() - t0
        return newer
