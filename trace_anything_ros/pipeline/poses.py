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

"""Camera poses for moving cameras (ROS-free): a bounded, thread-safe buffer of stamped camera poses (odometry,
TF, a ``camera_pose`` topic) and their lookup at a window's frame stamps.

A depth-aware model (``needs_intrinsics``) takes ``cam_poses`` = each frame's camera in the window's reference
(first) camera; without them it assumes a static camera, and on a moving camera the whole scene then looks like it
moves. ``lookup`` interpolates between the two samples around a stamp (translation linearly, rotation by slerp)
when both are within ``max_gap`` of it, else takes the nearest sample within ``max_gap``; a stamp with neither makes
the whole window pose-less (``None`` + the reason), never a guess.
"""
from __future__ import annotations

import bisect
import threading
from typing import Optional, Sequence, Tuple

import numpy as np

from ..planning import se3


def pose_matrix(xyz, quat_xyzw) -> np.ndarray:
    """4x4 from a position and an (x, y, z, w) quaternion (a PoseStamped's); ValueError when not finite or the
    quaternion is far from unit length (a corrupt message, not a rounding error)."""
    t = np.asarray(xyz, np.float64).reshape(3)
    q = np.asarray(quat_xyzw, np.float64).reshape(4)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise ValueError("pose is not finite")
    n = float(np.linalg.norm(q))
    if not 0.5 < n < 2.0:
        raise ValueError(f"quaternion norm {n:.3g} is not ~1")
    return se3.pose_from_xyz_quat(t, q / n)


class PoseBuffer:
    """Stamped camera poses ``fixed_T_camera`` (the camera's optical frame in a fixed frame), oldest first."""

    def __init__(self, capacity: int = 200, reset_after: float = 1.0, fetch=None):
        """``fetch(stamp_ns) -> 4x4 or None``: asked by ``lookup`` for stamps the buffer cannot answer (e.g. a tf2
        lookup; called from the worker thread, so it must be thread-safe)."""
        self.capacity = int(capacity)
        self.fetch = fetch
        self.reset_ns = int(reset_after * 1e9)  # a stamp this far behind the newest one is a time reset
        self._stamps = []  # int ns, sorted
        self._poses = []
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self.fixed_frame = ""

    def __len__(self) -> int:
        return len(self._stamps)

    def _forget(self) -> None:  # with the lock held
        self._stamps.clear()
        self._poses.clear()

    def add(self, stamp_ns: int, T: np.ndarray, fixed_frame: str = "") -> None:
        T = np.asarray(T, np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError("pose must be a finite 4x4")
        with self._lock:
            if fixed_frame and self.fixed_frame and fixed_frame != self.fixed_frame:
                self._forget()  # another fixed frame: the old poses are not comparable with the new ones
            self.fixed_frame = fixed_frame or self.fixed_frame
            if self._stamps and int(stamp_ns) < self._stamps[-1] - self.reset_ns:  # time reset (bag loop, sim)
                self._forget()
            i = bisect.bisect_left(self._stamps, int(stamp_ns))
            if i < len(self._stamps) and self._stamps[i] == int(stamp_ns):
                self._poses[i] = T
                return
            self._stamps.insert(i, int(stamp_ns))
            self._poses.insert(i, T)
            while len(self._stamps) > self.capacity:
                self._stamps.pop(0)
                self._poses.pop(0)
            self._added.notify_all()

    def _at(self, s: int, max_gap_ns: int) -> Optional[np.ndarray]:
        i = bisect.bisect_left(self._stamps, s)
        if i < len(self._stamps) and self._stamps[i] == s:
            return self._poses[i]
        lo, hi = i - 1, i
        if lo >= 0 and hi < len(self._stamps) and s - self._stamps[lo] <= max_gap_ns \
                and self._stamps[hi] - s <= max_gap_ns:
            a = (s - self._stamps[lo]) / (self._stamps[hi] - self._stamps[lo])
            return se3.interpolate_poses(self._poses[lo], self._poses[hi], a)[0]
        near = [j for j in (lo, hi) if 0 <= j < len(self._stamps) and abs(self._stamps[j] - s) <= max_gap_ns]
        if near:
            return self._poses[min(near, key=lambda j: abs(self._stamps[j] - s))]
        return None

    def _fetch_missing(self, stamps_ns, gap: int, wait: float) -> None:
        """Ask ``fetch`` for the stamps without a pose, again every 5 ms for up to ``wait`` s."""
        import time
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                missing = [int(s) for s in stamps_ns if self._at(int(s), gap) is None]
            for s in missing:
                try:
                    T = self.fetch(s)
                except Exception:  # noqa: BLE001 - a failing source is a missing pose, not a crash
                    T = None
                if T is not None:
                    self.add(s, T)
            if not missing or time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def lookup(self, stamps_ns: Sequence[int], max_gap: float = 0.05, wait: float = 0.0
               ) -> Tuple[Optional[np.ndarray], str]:
        """(``[N, 4, 4]`` fixed_T_camera at the stamps, "") or (None, why). ``wait``: seconds to wait for poses
        newer than the newest stamp (a camera driver usually publishes the pose just after the image)."""
        gap = int(round(max_gap * 1e9))
        newest = max(int(s) for s in stamps_ns)
        if self.fetch is not None:
            self._fetch_missing(stamps_ns, gap, wait)
            wait = 0.0
        with self._lock:
            if wait > 0:
                self._added.wait_for(lambda: self._stamps and self._stamps[-1] >= newest, timeout=wait)
            if not self._stamps:
                return None, "no camera pose received"
            out = []
            for s in stamps_ns:
                T = self._at(int(s), gap)
                if T is None:
                    return None, (f"no camera pose within {max_gap:g} s of frame stamp {int(s) * 1e-9:.3f} (poses "
                                  f"{self._stamps[0] * 1e-9:.3f}..{self._stamps[-1] * 1e-9:.3f} s)")
                out.append(T)
        return np.stack(out), ""


def relative_to_first(P: np.ndarray) -> np.ndarray:
    """``[N, 4, 4]`` fixed_T_camera -> each camera in the first one's frame (``ref_T_cam``)."""
    P = np.asarray(P, np.float64)
    return se3.invert(P[0])[None] @ P
