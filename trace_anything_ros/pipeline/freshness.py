# Copyright 2026 The trace_anything_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Window scheduling policy of the worker (``window.policy``). ROS-free.

``throughput`` (the FrameIngest as is): when the worker is free it takes the newest complete window at once. With a
model slower than the stream the worker is always busy, so that window's newest frame has usually been waiting
already: on average half a frame period (17 ms at 30 Hz; 30 ms median measured on the 2-core reference machine
under load), which counts as node overhead in the end-to-end latency.

``latency``: ``LatencyFirstWindows`` wraps the ingest. When a window is pending and its newest frame has waited
longer than ``fresh_age``, it does not take it: it waits for the next frame (which replaces the pending window; the
ingest counts the replaced one as ``stale_window``, like every window superseded while the worker is busy, and its
frames stay unused unless a later window holds them, so the frame accounting is unchanged) until ``periods`` (2.5)
frame periods (median spacing of the ring's arrivals, capped at ``max_wait``) after the pending window's newest frame
arrived, then takes the newest window.
Output latency then starts when the newest frame arrives; the price is up to one frame period of idle worker per
window (about 6 % fewer windows per second for a 250 ms model at 30 Hz). 2.5 periods, not 1: a frame lost on the
way (best-effort camera QoS, a loaded machine) does not make the worker give up on the one after it. If no newer
frame comes in time (stream stopped or slowed) the waiting window is processed after all. The wait polls the
ingest's public ``windows_offered`` counter every ``poll`` seconds (0.5 ms: at most ~1 % of a core while waiting).
"""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from .frames import Frame, FrameIngest

POLICIES = ("throughput", "latency")


class LatencyFirstWindows:
    """A FrameIngest as the WindowWorker sees it (``take_window`` with the latency-first policy; every other
    attribute is the ingest's)."""

    def __init__(self, ingest: FrameIngest, max_wait: float = 0.2, fresh_age: float = 0.004, periods: float = 2.5,
                 poll: float = 0.0005):
        self.ingest = ingest
        self.max_wait = float(max_wait)
        self.fresh_age = float(fresh_age)
        self.periods = float(periods)
        self.poll = float(poll)
        self.skipped = 0  # pending windows left to be replaced by a newer one
        self.waited_s = 0.0  # total seconds spent waiting for those

    def __getattr__(self, name):
        return getattr(self.ingest, name)

    def _period(self, ring: List[Frame]) -> float:
        d = np.diff([f.arrival for f in ring[-9:]])
        d = d[d > 0]
        return float(np.median(d)) if d.size else self.max_wait

    def take_window(self, timeout: float, now: Optional[float] = None) -> Optional[List[Frame]]:
        st = self.ingest.stats()
        if st["window_pending"]:
            ring = self.ingest.snapshot()
            t = time.monotonic() if now is None else now
            if ring and t - ring[-1].arrival > self.fresh_age:
                offered = st["windows_offered"]
                t0 = time.monotonic()
                # counted from the newest frame's arrival: a window is never held more than ``periods`` frame
                # periods (or ``max_wait``) after its newest frame arrived, whatever happens to the stream
                deadline = ring[-1].arrival + min(self.max_wait, self.periods * self._period(ring))
                while self.ingest.windows_offered == offered and time.monotonic() < deadline:
                    time.sleep(self.poll)
                if self.ingest.windows_offered != offered:
                    self.skipped += 1
                    self.waited_s += time.monotonic() - t0
        return self.ingest.take_window(timeout, now=now)
