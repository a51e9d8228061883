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

"""Frames on arrival: validation of stamps and sizes, preprocessing to the model grid, and the bounded ring.

ROS-free. The node's callbacks (and the offline ``process`` command) turn each incoming image into a ``Frame``
once (resize to the model input size, intrinsics scaled to that grid) and hand it to ``FrameIngest.push``, which
drops bad frames (counted by reason) and keeps the newest ``capacity`` frames.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from trace_anything_ros.model.preprocess import (prepare_depth, prepare_frame, prepare_intrinsics,  # noqa: F401
                                                 scale_intrinsics)

from .window import WindowSpec, select_window

# Drop reasons (keys of the drop counter; also reported in diagnostics).
ZERO_STAMP = "zero_stamp"
DUPLICATE_STAMP = "duplicate_stamp"
NON_MONOTONIC_STAMP = "non_monotonic_stamp"
TIME_RESET = "time_reset"            # frames cleared (or held back, unconfirmed) because the clock jumped backwards
SIZE_CHANGE = "size_change"          # frames cleared (or held back, unconfirmed) because the image size changed
TIME_JUMP = "time_jump"              # frames of an unconfirmed forward jump of the stamps (more than the arrival gap)
FUTURE_STAMP = "future_stamp"        # stamps ahead of the node's clock beyond the tolerance
STALE_WINDOW = "stale_window"        # windows superseded by a newer one while the model was busy
STALE_AGE = "stale_age"              # windows older than max_window_age when the worker got to them
# windows whose processing straddled a reset (time jump / size change): not published
STALE_RESET = "stale_reset"
TOO_CLOSE = "min_spacing"            # not a drop of a frame: counted when a frame is skipped by spacing
BAD_ENCODING = "unsupported_encoding"
BAD_DATA = "invalid_image"
BAD_DEPTH = "invalid_depth"
NO_SYNC = "unsynchronised"


class DropCounter:
    """Thread-safe counter of dropped frames/windows by reason, and when each reason was last reported (``seen``:
    the drops a node's /diagnostics stays at WARN for while they recur; not every counted drop is one)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._c: Counter = Counter()
        self._seen: Dict[str, float] = {}     # reason -> monotonic time it was last reported

    def seen(self, reason: str, now: Optional[float] = None) -> None:
        """Report ``reason`` as seen now (a drop counted here or by whoever counted it)."""
        with self._lock:
            self._seen[reason] = time.monotonic() if now is None else now

    def forget(self, reason: str) -> None:
        """No longer recent (the drops were explained: a camera's confirmed stream change); the count stays."""
        with self._lock:
            self._seen.pop(reason, None)

    def recent(self, window_s: float, now: Optional[float] = None) -> List[str]:
        """The reasons seen within the last ``window_s`` seconds, sorted."""
        t = time.monotonic() if now is None else now
        with self._lock:
            return sorted(r for r, at in self._seen.items() if t - at <= window_s)

    def add(self, reason: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._c[reason] += n

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._c)

    def total(self) -> int:
        with self._lock:
            return sum(self._c.values())

    def __getitem__(self, reason: str) -> int:
        with self._lock:
            return self._c.get(reason, 0)


@dataclass
class Frame:
    """One preprocessed frame at the model's input size."""

    stamp_ns: int                     # the original stamp in integer nanoseconds (exact round trip to ROS Time)
    rgb: np.ndarray                   # uint8 [H, W, 3] at the model input size
    frame_id: str = ""
    depth: Optional[np.ndarray] = None  # float32 [H, W] metres, NaN where invalid
    intrinsics: Optional[np.ndarray] = None  # 3x3, scaled to the model grid
    source_size: Tuple[int, int] = (0, 0)     # (H, W) of the original image
    arrival: float = field(default_factory=time.monotonic)
    # set by FrameIngest.push: increasing arrival id (identifies the frame across windows)
    key: int = -1
    used: bool = False                # set when the worker took a window holding this frame

    @property
    def stamp(self) -> float:
        return self.stamp_ns * 1e-9


# One home for preprocessing: the model package's rule (model/preprocess.py). On arrival the node uses its "fast"
# resize (same geometry as the official PIL rule, max |diff| ~12 grey levels, ~1 ms for 640x480 -> 96x128).
ARRIVAL_RESIZE = "fast"


def preprocess_rgb(rgb: np.ndarray, input_size: Tuple[int, int], method: str = ARRIVAL_RESIZE) -> np.ndarray:
    """An RGB uint8 image [h, w, 3] (any strides) -> the model input [H, W, 3], once, on arrival:
    ``model.preprocess.prepare_frame`` (resize by the long side, top-left crop; portrait handling)."""
    return prepare_frame(rgb, input_size, method=method)


def preprocess_depth(depth: np.ndarray, input_size: Tuple[int, int]) -> np.ndarray:
    """Metric depth through the same geometry as the image (``model.preprocess.prepare_depth``, nearest)."""
    return prepare_depth(depth, input_size)


def frame_intrinsics(k: np.ndarray, image_hw: Tuple[int, int], input_size: Tuple[int, int],
                     info_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """K of the model grid for a camera_info K: rescaled first when camera_info declares another size than the
    image (binning), then ``model.preprocess.prepare_intrinsics`` (resize factor, crop shift) like the image."""
    k = np.asarray(k, np.float64).reshape(3, 3)
    if info_hw is not None and tuple(info_hw) != tuple(image_hw) and info_hw[0] > 0 and info_hw[1] > 0:
        k = scale_intrinsics(k, info_hw, image_hw)
    return prepare_intrinsics(k, image_hw, input_size)


class FrameIngest:
    """Validates stamps/sizes of arriving frames and keeps the newest ``capacity`` in a bounded ring.

    Thread-safe: callbacks push, the worker reads snapshots. ``on_event(kind, message)`` is called (outside the
    lock) for events worth a log line (time reset, size change); drops are counted in ``drops``.

    Stream consistency (``switch_frames`` = N): the stream has a size and a time base (the last accepted stamp and
    its arrival). A frame that breaks them -- another size, a stamp at least ``time_reset_threshold`` behind, or a
    stamp that jumps ahead by more than the arrival gap + ``time_reset_threshold`` -- is held as a candidate and
    dropped (counted as ``size_change`` / ``time_reset`` / ``time_jump``); only N consecutive candidates
    consistent among themselves (same size, increasing stamps, no frame of the current stream in between) switch
    the stream (the ring is cleared for a size change or time reset, and the N-th frame is accepted). So a second
    publisher interleaving frames of another size or time base never resets the buffer: the real stream goes on.
    With N = 1 every change switches at once (the offline ``process`` command: a file has one source).
    ``max_future`` (s): with ``push(frame, now_ns=...)`` a stamp more than this ahead of ``now_ns`` is refused
    (``future_stamp``); it would otherwise make every real frame non-monotonic until the clock catches up.
    """

    def __init__(self, capacity: int, time_reset_threshold: float = 1.0,
                 drops: Optional[DropCounter] = None,
                 on_event: Optional[Callable[[str, str], None]] = None,
                 window: Optional[WindowSpec] = None, switch_frames: int = 1,
                 max_future: Optional[float] = None):
        if capacity < 1:
            raise ValueError("ring capacity must be >= 1")
        self.window = window
        if window is not None and capacity < window.length:
            raise ValueError(f"ring capacity {capacity} cannot hold a window of {window.length} frames")
        self._pending: Optional[List[Frame]] = None  # single-slot mailbox: the newest complete window
        self.windows_offered = 0
        self.capacity = int(capacity)
        self.time_reset_threshold = float(time_reset_threshold)
        self.drops = drops if drops is not None else DropCounter()
        self.on_event = on_event
        self._ring: Deque[Frame] = deque(maxlen=self.capacity)
        self._lock = threading.Condition()
        self._last_stamp_ns: Optional[int] = None
        self._last_arrival: Optional[float] = None
        self._size: Optional[Tuple[int, int]] = None
        self.switch_frames = max(1, int(switch_frames))
        self.max_future_ns = None if max_future is None else int(round(float(max_future) * 1e9))
        # the candidate stream (a size / time-base change not yet confirmed): [kind, size, last stamp, count]
        self._cand: Optional[list] = None
        self.switches = 0  # confirmed size / time-base changes
        self._next_key = 0
        self._closed = False
        self.accepted = 0
        self.generation = 0  # bumped on every reset (time reset, size change, clear)
        # frame accounting: every accepted frame is either used (in a window the worker took), dropped unused
        # (evicted from the ring / cleared before any window took it) or still unused in the ring:
        #   accepted == used + unused_dropped + unused_in_ring
        self.used = 0
        self.unused_dropped = 0
        self.taken_generation = 0  # generation when the worker took its latest window

    def _count_unused(self, frames) -> None:
        self.unused_dropped += sum(1 for f in frames if not f.used)

    def check_stamp(self, stamp_ns: int, now_ns: Optional[int] = None, size=None) -> Optional[str]:
        """Reason a frame with this stamp (and source ``size`` (h, w), when known) would be dropped now, or None.
        Read-only (push decides again under its lock): the node calls it before converting a message, so frames
        that are dropped anyway (bad stamps, unconfirmed size / time-base changes) cost no conversion."""
        with self._lock:
            return self._decide(stamp_ns, size, time.monotonic(), now_ns)[0]

    @property
    def size(self) -> Optional[Tuple[int, int]]:
        """(h, w) of the current stream's source images (None before the first frame)."""
        return self._size

    def admit(self, stamp_ns: int, size, now_ns: Optional[int] = None, candidates: bool = True) -> Optional[str]:
        """The node's check of a message's declared stamp and size before converting it: returns (and counts) the
        reason when the frame is dropped whatever its content (zero, future, duplicate or non-monotonic stamp)
        and, with ``candidates``, when it is an unconfirmed size / time-base change (recorded as a candidate, so
        an interleaving second publisher's frames cost no conversion; the frame that confirms a change is let
        through); else None: convert the frame and ``push`` it. ``candidates=False`` (images that wait for depth
        first): changes are left to ``push``, so the depth sync sees the stream as sent."""
        with self._lock:
            reason, _, cand = self._decide(stamp_ns, tuple(size), time.monotonic(), now_ns)
            if reason is None:
                return None
            if reason in (SIZE_CHANGE, TIME_RESET, TIME_JUMP):
                if not candidates:
                    return None
                self._cand = cand
            self.drops.add(reason)
            return reason

    def _future(self, stamp_ns: int, now_ns: Optional[int]) -> bool:
        # now_ns <= 0: the node's clock has no time yet (use_sim_time before the first /clock): no reference
        return (self.max_future_ns is not None and now_ns is not None and now_ns > 0
                and stamp_ns - now_ns > self.max_future_ns)

    def _decide(self, s: int, size, arrival: float, now_ns: Optional[int]):
        """(drop reason, change kind, new candidate) of a frame; read-only. ``size`` None: unknown (assumed the
        current one). reason None and kind set: the frame confirms a change of kind ``kind``."""
        if s <= 0:
            return ZERO_STAMP, None, self._cand
        if self._future(s, now_ns):
            return FUTURE_STAMP, None, self._cand
        last = self._last_stamp_ns
        if last is None:
            return None, None, None
        thr = self.time_reset_threshold
        size = self._size if size is None else tuple(size)
        kind = None
        if self._size is not None and size != self._size:
            kind = SIZE_CHANGE
        elif s == last:
            return DUPLICATE_STAMP, None, self._cand
        elif s < last:
            if (last - s) * 1e-9 < thr:
                return NON_MONOTONIC_STAMP, None, self._cand
            kind = TIME_RESET
        else:
            gap = (arrival - self._last_arrival) if self._last_arrival is not None else 0.0
            if (s - last) * 1e-9 > max(gap, 0.0) + thr:  # ahead of the time that passed: a new time base
                kind = TIME_JUMP
        if kind is None:
            return None, None, None  # continues the stream (a pending change was not consistent: forgotten)
        c = self._cand
        if c is not None and c[1] == size:
            if s == c[2]:
                return DUPLICATE_STAMP, None, c
            if s < c[2] and (c[2] - s) * 1e-9 < thr:
                return NON_MONOTONIC_STAMP, None, c
            if s > c[2] and (s - c[2]) * 1e-9 < thr:
                c = [c[0], size, s, c[3] + 1]
                return (None, c[0], None) if c[3] >= self.switch_frames else (c[0], None, c)
        c = [kind, size, s, 1]
        return (None, kind, None) if self.switch_frames <= 1 else (kind, None, c)

    def push(self, frame: Frame, now_ns: Optional[int] = None) -> Optional[str]:
        """Add a frame. Returns the drop reason when the frame was dropped, else None. ``now_ns``: the node's clock
        (for the ``max_future`` check; None: no check)."""
        events = []
        with self._lock:
            size = tuple(frame.source_size)
            reason, kind, self._cand = self._decide(frame.stamp_ns, size, frame.arrival, now_ns)
            if reason is None and kind is not None:
                self.switches += 1
                self._switch(kind, frame, events)
            if reason is not None:
                self.drops.add(reason)
                return reason
            self._size = size
            self._last_stamp_ns = frame.stamp_ns
            self._last_arrival = frame.arrival
            frame.key = self._next_key
            self._next_key += 1
            if len(self._ring) == self.capacity and not self._ring[0].used:
                self.unused_dropped += 1  # evicted without ever being in a processed window
            self._ring.append(frame)
            self.accepted += 1
            if self.window is not None:
                win = select_window(self._ring, self.window)
                if win is not None and win[-1] is frame:
                    if self._pending is not None:
                        self.drops.add(STALE_WINDOW)  # superseded before the worker took it: never queued
                    self._pending = win
                    self.windows_offered += 1
            self._lock.notify_all()
        if self.on_event is not None:
            for kind, msg in events:
                self.on_event(kind, msg)
        return None

    def _switch(self, kind: str, frame: Frame, events: list) -> None:
        """Confirmed change of the stream (called under the lock): a new size or an earlier time base clears the
        ring (its frames are counted under ``kind``); a forward time jump keeps it (older frames of one timeline)."""
        n = self.switch_frames
        note = f" (confirmed by {n} consistent frames)" if n > 1 else ""
        if kind == TIME_JUMP:
            gap = frame.arrival - self._last_arrival if self._last_arrival is not None else 0.0
            events.append((TIME_JUMP, f"stamps jumped ahead by {(frame.stamp_ns - self._last_stamp_ns) * 1e-9:.3f} s "
                                      f"in {gap:.3f} s: new time base{note}"))
            return
        self.drops.add(kind, len(self._ring))
        self._count_unused(self._ring)
        self._ring.clear()
        self._pending = None
        self.generation += 1
        if kind == TIME_RESET:
            events.append((TIME_RESET, f"stamp jumped back by {(self._last_stamp_ns - frame.stamp_ns) * 1e-9:.3f} s:"
                                       f" time reset, frame buffer cleared{note}"))
        else:
            events.append((SIZE_CHANGE, f"image size changed from {self._size[1]}x{self._size[0]} to "
                                        f"{frame.source_size[1]}x{frame.source_size[0]}: frame buffer reset{note}"))

    def clear(self) -> None:
        with self._lock:
            self._count_unused(self._ring)
            self._ring.clear()
            self._last_stamp_ns = None
            self._last_arrival = None
            self._cand = None
            self._size = None
            self._pending = None
            self.generation += 1
            self._lock.notify_all()

    def snapshot(self) -> List[Frame]:
        with self._lock:
            return list(self._ring)

    def take_window(self, timeout: float, now: Optional[float] = None) -> Optional[List[Frame]]:
        """Take the newest complete window (oldest frame first), waiting up to ``timeout`` seconds for one.

        A window whose newest frame arrived more than ``window.max_age`` seconds ago is dropped (STALE_AGE).
        """
        with self._lock:
            if not self._lock.wait_for(lambda: self._pending is not None or self._closed, timeout=timeout):
                return None
            win, self._pending = self._pending, None
            if win is None:
                return None
            if self.window is not None and self.window.max_age > 0:
                age = (time.monotonic() if now is None else now) - win[-1].arrival
                if age > self.window.max_age:
                    self.drops.add(STALE_AGE)
                    return None
            for f in win:
                if not f.used:
                    f.used = True
                    self.used += 1
            self.taken_generation = self.generation
        return win

    def stats(self) -> Dict[str, int]:
        """Queue sizes and frame accounting (see ``__init__``) for diagnostics."""
        with self._lock:
            return {"ring": len(self._ring), "ring_capacity": self.capacity,
                    "window_pending": int(self._pending is not None), "accepted": self.accepted, "used": self.used,
                    "unused_dropped": self.unused_dropped,
                    "unused_in_ring": sum(1 for f in self._ring if not f.used),
                    "windows_offered": self.windows_offered, "generation": self.generation}

    def close(self) -> None:
        """Wake every waiter for good (shutdown)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._ring)
