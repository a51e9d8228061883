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

"""The map between ROS stamps (seconds) and the curves' normalised time t.

The model predicts one normalised time per frame. Those predictions can be irregular, duplicated, non-monotone
or plain degenerate (the official parity fixture predicts 0.9235, 0.9227, 0.6032 for frames at input times 0,
0.5, 1). :func:`build_time_map` therefore checks them with a robust (Theil-Sen) affine fit against the
stamp-normalised time ``u = (s - s0) / (s_last - s0)`` and

* uses them (``source="predicted_pwl"``: monotone piecewise-linear through the isotonic-regressed predictions,
  or ``"predicted_affine"``: the robust affine fit) when they are sane: finite, increasing with the stamps
  (slope within [min_slope, max_slope]) and close to that affine fit;
* falls back to the stamp-normalised time (``source="stamps"``, t = u) otherwise, and says why (``reason``).

The map is strictly increasing, hence invertible (``to_stamp``), and continues linearly past both ends with
the robust slope, which is what forecasting uses for stamps after the window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOURCES = ("predicted_pwl", "predicted_affine", "stamps")


@dataclass(frozen=True)
class TimeMap:
    knot_stamps: np.ndarray  # [K] seconds, strictly increasing
    knot_times: np.ndarray  # [K] normalised, strictly increasing
    rate_before: float  # dt/ds used before the first knot
    rate_after: float  # dt/ds used after the last knot
    source: str  # one of SOURCES
    reason: str  # why this source was chosen
    frame_stamps: np.ndarray  # [N] the window's stamps (as given)

    @property
    def frame_times(self) -> np.ndarray:
        """Normalised time of every frame of the window under this map ``[N]``."""
        return self.to_time(self.frame_stamps)

    @property
    def duration(self) -> float:
        return float(self.frame_stamps[-1] - self.frame_stamps[0])

    def to_time(self, stamps) -> np.ndarray:
        s = np.asarray(stamps, dtype=np.float64)
        out = np.interp(s, self.knot_stamps, self.knot_times)
        out = np.where(s > self.knot_stamps[-1], self.knot_times[-1] + (s - self.knot_stamps[-1]) * self.rate_after,
                       out)
        out = np.where(s < self.knot_stamps[0], self.knot_times[0] + (s - self.knot_stamps[0]) * self.rate_before,
                       out)
        return out

    def to_stamp(self, times) -> np.ndarray:
        t = np.asarray(times, dtype=np.float64)
        out = np.interp(t, self.knot_times, self.knot_stamps)
        out = np.where(t > self.knot_times[-1], self.knot_stamps[-1] + (t - self.knot_times[-1]) / self.rate_after,
                       out)
        out = np.where(t < self.knot_times[0], self.knot_stamps[0] + (t - self.knot_times[0]) / self.rate_before,
                       out)
        return out

    def rate(self, stamps) -> np.ndarray:
        """dt/ds (1/seconds) at ``stamps`` (the slope of the segment holding each stamp)."""
        s = np.asarray(stamps, dtype=np.float64)
        slopes = np.diff(self.knot_times) / np.diff(self.knot_stamps)
        idx = np.clip(np.searchsorted(self.knot_stamps, s, side="right") - 1, 0, len(slopes) - 1)
        out = slopes[idx]
        out = np.where(s >= self.knot_stamps[-1], self.rate_after, out)
        out = np.where(s < self.knot_stamps[0], self.rate_before, out)
        return out


def theil_sen(x: np.ndarray, y: np.ndarray):
    """Robust line ``y = a + b x``: median of pairwise slopes, median intercept."""
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    ok = dx > 0
    if not np.any(ok):
        return float(np.median(y)), 0.0
    b = float(np.median((y[j] - y[i])[ok] / dx[ok]))
    a = float(np.median(y - b * x))
    return a, b


def isotonic_increasing(y: np.ndarray, w=None) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing sequence closest to ``y`` in weighted L2."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    vals, wts, cnt = [], [], []
    for yi, wi in zip(y, w):  # loop over frames (N ~ 2..64), not pixels
        vals.append(yi), wts.append(wi), cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, c2 = vals.pop(), wts.pop(), cnt.pop()
            v1, w1, c1 = vals.pop(), wts.pop(), cnt.pop()
            vals.append((v1 * w1 + v2 * w2) / (w1 + w2)), wts.append(w1 + w2), cnt.append(c1 + c2)
    return np.repeat(vals, cnt)


def stamp_time_map(stamps, reason: str = "requested") -> TimeMap:
    """t = (s - s0) / (s_last - s0). One frame (or zero span): t = 0 at the stamp, rate 1 per second."""
    stamps = _check_stamps(stamps)
    s0, s1 = float(stamps[0]), float(stamps[-1])
    if s1 - s0 <= 0.0:
        return TimeMap(np.array([s0, s0 + 1.0]), np.array([0.0, 1.0]), 1.0, 1.0, "stamps",
                       reason + "; zero stamp span: 1 normalised unit per second", stamps)
    rate = 1.0 / (s1 - s0)
    return TimeMap(np.array([s0, s1]), np.array([0.0, 1.0]), rate, rate, "stamps", reason, stamps)


def _check_stamps(stamps) -> np.ndarray:
    stamps = np.asarray(stamps, dtype=np.float64).reshape(-1)
    if stamps.size == 0 or not np.all(np.isfinite(stamps)):
        raise ValueError("stamps must be a non-empty array of finite seconds")
    if np.any(np.diff(stamps) < 0):
        raise ValueError("stamps must be non-decreasing (oldest first)")
    return stamps


def build_time_map(stamps, predicted_times=None, mode: str = "auto", min_slope: float = 0.5,
                   max_slope: float = 1.5, max_residual: float = 0.1) -> TimeMap:
    """Map stamps <-> normalised time for one window.

    mode: ``"auto"``/``"pwl"`` (piecewise-linear through the predictions when sane), ``"affine"`` (robust affine
    fit of the predictions when sane), ``"stamps"`` (always stamp-normalised). ``min_slope``/``max_slope``:
    accepted range of d(predicted)/d(stamp-normalised time); ``max_residual``: accepted median absolute deviation
    of the predictions from their robust line. Duplicate stamps are merged (their predictions averaged).
    """
    if mode not in ("auto", "pwl", "affine", "stamps"):
        raise ValueError(f"unknown time-map mode {mode!r}")
    stamps = _check_stamps(stamps)
    if mode == "stamps":
        return stamp_time_map(stamps, "requested")
    if predicted_times is None:
        return stamp_time_map(stamps, "no predicted times")
    p = np.asarray(predicted_times, dtype=np.float64).reshape(-1)
    if p.shape != stamps.shape:
        raise ValueError(f"{p.size} predicted times for {stamps.size} stamps")
    if not np.all(np.isfinite(p)):
        return stamp_time_map(stamps, "predicted times not finite")
    # merge duplicate stamps
    us, inv = np.unique(stamps, return_inverse=True)
    if us.size < 2:
        return stamp_time_map(stamps, "fewer than two distinct stamps")
    pm = np.bincount(inv, weights=p) / np.bincount(inv)
    u = (us - us[0]) / (us[-1] - us[0])
    a, b = theil_sen(u, pm)
    resid = float(np.median(np.abs(pm - (a + b * u))))
    if not (min_slope <= b <= max_slope):
        return stamp_time_map(stamps, f"predicted times degenerate: robust slope {b:.3f} vs stamps outside "
                                      f"[{min_slope}, {max_slope}]")
    if resid > max_residual:
        return stamp_time_map(stamps, f"predicted times irregular: median residual {resid:.3f} > {max_residual}")
    rate = b / (us[-1] - us[0])
    if mode == "affine":
        knots_t = a + b * u[[0, -1]]
        return TimeMap(us[[0, -1]].copy(), knots_t, rate, rate, "predicted_affine",
                       f"robust affine fit t = {a:.4f} + {b:.4f} u", stamps)
    q = np.clip(isotonic_increasing(pm), 0.0, 1.0)
    # strictly increasing: at least 1e-3 of the robust slope over each stamp gap
    min_step = 1e-3 * b * np.diff(u)
    for k in range(1, q.size):
        q[k] = max(q[k], q[k - 1] + min_step[k - 1])
    return TimeMap(us.copy(), q, rate, rate, "predicted_pwl",
                   f"monotone piecewise-linear through predictions (robust slope {b:.3f})", stamps)
