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

"""Dynamic masks from a trajectory field.

Two rules:

* :func:`official_variance_mask` — a baseline that follows the rule of the official Trace Anything inference
  script (re-implemented from its description): per pixel, the variance of the control points over the
  control-point axis (population variance), averaged over x/y/z; Otsu's threshold on a 256-bin histogram of
  ``log(var + 1e-9)``; the threshold is taken back with ``exp`` and clamped to the [40 %, 95 %] quantiles of the
  variance (midpoint of the 65 % and 80 % quantiles when Otsu finds no split); moving = var > threshold. By
  construction it marks at least ~5 % of the pixels as moving, even in a static scene.
* :func:`dynamic_mask` — the rule the robot uses. Each pixel's curve is evaluated at the window's frame times
  (the field is in the window's reference camera, so a static point has a constant position whatever the
  camera did); its motion score is the largest displacement from its position at its own frame time, divided by
  ``z ** depth_power`` (noise grows with depth). The threshold is ``median + k * 1.4826 * MAD`` of the scores of
  the static majority (two robust passes) with an absolute floor, so an all-static scene yields an *empty*
  mask. Pixels with non-finite values, non-positive depth or low confidence never count as moving. The raw
  mask is cleaned with a morphological opening and closing and components smaller than ``min_area`` pixels are
  removed.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


# ----------------------------------------------------------------------------------------------- baseline
def otsu_threshold(values: np.ndarray, bins: int = 256):
    """Otsu's threshold (a bin centre) on a histogram of ``values``; None when there is no split."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    hist, edges = np.histogram(v, bins=bins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centers)
    ok = (w0 > 0) & (w1 > 0)
    if not np.any(ok):
        return None
    m0 = s0[ok] / w0[ok]
    m1 = (s0[-1] - s0[ok]) / w1[ok]
    between = w0[ok] * w1[ok] * (m0 - m1) ** 2
    return float(centers[ok][int(np.argmax(between))])


def official_variance_mask(ctrl_pts_frame: np.ndarray):
    """Baseline mask of one frame from its control points ``[D, H, W, 3]``: ``(mask [H, W] bool, var, thr)``."""
    c = np.asarray(ctrl_pts_frame, dtype=np.float64)
    var = c.var(axis=0).mean(-1)  # [H, W]
    thr_log = otsu_threshold(np.log(var + 1e-9))
    if thr_log is None or not np.isfinite(thr_log):
        thr = 0.5 * (np.quantile(var, 0.65) + np.quantile(var, 0.80))
    else:
        thr = float(np.clip(np.exp(thr_log), np.quantile(var, 0.40), np.quantile(var, 0.95)))
    return ~(var <= thr), var, thr


# ----------------------------------------------------------------------------------------------- robust rule
@dataclass
class MaskResult:
    mask: np.ndarray  # [H, W] bool, cleaned
    score: np.ndarray  # [H, W] float32 normalised motion score (0 where invalid)
    valid: np.ndarray  # [H, W] bool pixels that could be judged
    threshold: float  # score threshold used
    noise_median: float  # median score of the static majority
    noise_scale: float  # robust std (1.4826 MAD) of the static majority
    raw: np.ndarray  # [H, W] bool mask before clean-up


def motion_score(positions: np.ndarray, ref_index: int, conf=None, min_confidence: float = 0.0,
                 depth_power: float = 1.0, min_z: float = 1e-3):
    """``positions [T, H, W, 3]`` of one frame's pixels at the window's frame times -> ``(score, valid, z)``.

    score = max_k |x_k - x_ref| / z_ref ** depth_power; valid = finite everywhere, z_ref > min_z and
    confidence (``conf [H, W]`` at the pixel's own time) > min_confidence.
    """
    X = np.asarray(positions)
    ref = X[ref_index]
    z = ref[..., 2]
    # max over time of the squared distance, one sqrt per pixel (sqrt is monotonic: same values, NaN kept); the
    # three components are added as strided views (a numpy reduction over a trailing axis of 3 is ~6x slower)
    D = X - ref[None]
    D *= D
    d2 = D[..., 0] + D[..., 1]
    d2 += D[..., 2]
    d = np.sqrt(d2.max(0))  # [H, W]
    valid = np.isfinite(d) & np.isfinite(z) & (z > min_z)
    if conf is not None:
        conf = np.asarray(conf)
        valid &= np.isfinite(conf) & (conf > min_confidence)
    zs = np.where(valid, z, 1.0)
    score = np.where(valid, d / (zs if depth_power == 1.0 else zs ** depth_power), 0.0).astype(np.float32)
    return score, valid, z


def robust_threshold(score: np.ndarray, valid: np.ndarray, k: float, floor: float, passes: int = 2):
    """``(threshold, median, scale)``: median + k * 1.4826 * MAD of the static majority, at least ``floor``."""
    s = score[valid].astype(np.float64)
    if s.size == 0:
        return float("inf"), float("nan"), float("nan")
    med = float(np.median(s))
    scale = float(1.4826 * np.median(np.abs(s - med)))
    thr = med + k * scale
    for _ in range(passes - 1):
        inl = s[s <= max(thr, floor)]
        if inl.size < 8:
            break
        med = float(np.median(inl))
        scale = float(1.4826 * np.median(np.abs(inl - med)))
        thr = med + k * scale
    return max(thr, floor), med, scale


def _disk(r: int):
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def clean_mask(raw: np.ndarray, open_radius: int = 1, close_radius: int = 1, min_area: int = 20) -> np.ndarray:
    m = raw.astype(np.uint8)
    if open_radius > 0:
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, _disk(open_radius))
    if close_radius > 0:
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, _disk(close_radius))
    if min_area > 1 and m.any():
        n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        keep = np.zeros(n, dtype=bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
        m = keep[lab].astype(np.uint8)
    return m.astype(bool)


def dynamic_mask(positions: np.ndarray, ref_index: int, conf=None, *, min_confidence: float = 0.0,
                 depth_power: float = 1.0, min_z: float = 1e-3, noise_k: float = 6.0,
                 min_rel_motion: float = 0.01, open_radius: int = 1, close_radius: int = 1,
                 min_area: int = 20) -> MaskResult:
    """The robust dynamic mask of one frame (see the module docstring). Returns :class:`MaskResult`."""
    score, valid, _ = motion_score(positions, ref_index, conf, min_confidence, depth_power, min_z)
    thr, med, scale = robust_threshold(score, valid, noise_k, min_rel_motion)
    raw = valid & (score > thr)
    mask = clean_mask(raw, open_radius, close_radius, min_area) & valid
    return MaskResult(mask, score, valid, float(thr), med, scale, raw)
