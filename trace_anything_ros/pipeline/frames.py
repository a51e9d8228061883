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
TIME_RESET = "time_reset"            # frames cleared because the clock jumped backwards
SIZE_CHANGE = "size_change"          # frames cleared because the image size changed
STALE_WINDOW = "stale_window"        # windows superseded by a newer one while the model was busy
STALE_AGE = "stale_age"              # windows older than max_window_age when the worker got to them
STALE_RESET = "stale_reset"          # windows whose processing straddled a reset (time jump / size change): not published
TOO_CLOSE = "min_spacing"            # not a drop of a frame: counted when a frame is skipped by spacing
BAD_ENCODING = "unsupported_encoding"
BAD_DATA = "invalid_image"
BAD_DEPTH = "invalid_depth"
NO_SYNC = "unsynchronised"


class DropCounter:
    """Thread-safe counter of dropped frames/windows by reason."""

    def __init__(self):
        self._lock = threading.Lock()
        self._c: Counter = Counter()

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
    key: int = -1                     # set by FrameIngest.push: increasing arrival id (identifies the frame across windows)
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
    """

    def __init__(self, capacity: int, time_reset_threshold: float = 1.0,
                 drops: Optional[DropCounter] = None,
                 on_event: Optional[Callable[[str, str], None]] = None,
                 window: Optional[WindowSpec] = None):
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
        self._size: Optional[Tuple[int, int]] = None
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

    def check_stamp(self, stamp_ns: int) -> Optional[str]:
        """Reason this stamp would be dropped, or None. (Read-only; push does the same under its lock.)"""
        with self._lock:
            return self._stamp_verdict(stamp_ns)[0]

    def _stamp_verdict(self, stamp_ns: int):
        if stamp_ns <= 0:
            return ZERO_STAMP, False
        last = self._last_stamp_ns
        if last is None:
            return None, False
        if stamp_ns == last:
            return DUPLICATE_STAMP, False
        if stamp_ns < last:
            if (last - stamp_ns) * 1e-9 >= self.time_reset_threshold:
                return None, True  # accept the frame after clearing: the clock was reset (bag loop, sim restart)
            return NON_MONOTONIC_STAMP, False
        return None, False

    def push(self, frame: Frame) -> Optional[str]:
        """Add a frame. Returns the drop reason when the frame was dropped, else None."""
        events = []
        with self._lock:
            reason, reset = self._stamp_verdict(frame.stamp_ns)
            if reason is not None:
                self.drops.add(reason)
                return reason
            if reset:
                self.drops.add(TIME_RESET, len(self._ring))
                self._count_unused(self._ring)
                self._ring.clear()
                self._pending = None
                self.generation += 1
                events.append((TIME_RESET, f"stamp jumped back by {(self._last_stamp_ns - frame.stamp_ns) * 1e-9:.3f} s:"
                                           " time reset, frame buffer cleared"))
            size = frame.source_size
            if self._size is not None and size != self._size:
                self.drops.add(SIZE_CHANGE, len(self._ring))
                self._count_unused(self._ring)
                self._ring.clear()
                self._pending = None
                self.generation += 1
                events.append((SIZE_CHANGE, f"image size changed from {self._size[1]}x{self._size[0]} to "
                                            f"{size[1]}x{size[0]}: frame buffer reset"))
            self._size = size
            self._last_stamp_ns = frame.stamp_ns
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

    def clear(self) -> None:
        with self._lock:
            self._count_unused(self._ring)
            self._ring.clear()
            self._last_stamp_ns = None
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
