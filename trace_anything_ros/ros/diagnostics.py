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

"""diagnostic_msgs/DiagnosticArray for /diagnostics, written here (no diagnostic_updater in this environment)."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Dict, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # DiagnosticStatus levels as ints (the message stores them as bytes)


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._t: deque = deque()
        self._lock = threading.Lock()
        self.count = 0
        self.last: Optional[float] = None

    def tick(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._t.append(now)
            self.count += 1
            self.last = now
            while self._t and now - self._t[0] > self.window_s:
                self._t.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._t and now - self._t[0] > self.window_s:
                self._t.popleft()
            if len(self._t) < 2:
                return 0.0
            span = max(now - self._t[0], self._t[-1] - self._t[0])
            return (len(self._t) - 1) / span if span > 0 else 0.0


class Stat:
    """Last / mean / median / max of a scalar over the last ``n`` samples."""

    def __init__(self, n: int = 50):
        self._v: deque = deque(maxlen=n)
        self._lock = threading.Lock()

    def add(self, v: float) -> None:
        with self._lock:
            self._v.append(float(v))

    def summary(self) -> Dict[str, float]:
        with self._lock:
            if not self._v:
                return {}
            v = list(self._v)
        srt = sorted(v)
        return {"last": v[-1], "mean": sum(v) / len(v), "median": srt[len(srt) // 2], "max": max(v)}


def status(name: str, hardware_id: str, level: int, message: str, values: Dict[str, object]) -> DiagnosticStatus:
    s = DiagnosticStatus()
    s.level = bytes([int(level)])
    s.name, s.hardware_id, s.message = name, hardware_id, message
    s.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return s


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def array(stamp, statuses) -> DiagnosticArray:
    a = DiagnosticArray()
    a.header.stamp = stamp
    a.status = list(statuses)
    return a


def level_of(s: DiagnosticStatus) -> int:
    lv = s.level
    return lv[0] if isinstance(lv, (bytes, bytearray)) else int(lv)
