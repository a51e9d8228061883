"""The narrow seam between the pipeline and the field / motion packages.

Everything the pipeline needs from ``trace_anything_ros.field`` and ``trace_anything_ros.motion`` goes through the
functions here, so that an API change there touches one file. Where the owning module does not provide a
function (yet: ``motion.analyze``), a minimal stand-in is used and reported as ``source="fallback"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from trace_anything_ros.field.evaluate import evaluate_curves
from trace_anything_ros.field.forecast import Forecast, forecast_curves
from trace_anything_ros.field.scale import apply_scale, metric_scale_from_depth  # noqa: F401 (re-exported)
from trace_anything_ros.field.timemap import TimeMap, build_time_map
from trace_anything_ros.field.types import TrajectoryField


# ----------------------------------------------------------------------------------------------- evaluation
def evaluate(ctrl: np.ndarray, t, d_axis: int = 0, deriv: int = 0, extrapolate: Optional[int] = None) -> np.ndarray:
    """Curves (control-point axis ``d_axis``) at normalised times ``t`` (``field.evaluate.evaluate_curves``)."""
    return evaluate_curves(ctrl, t, d_axis=d_axis, deriv=deriv, extrapolate=extrapolate)


def time_map(stamps: np.ndarray, frame_times: np.ndarray) -> TimeMap:
    """Stamp <-> normalised-time map of a window (``field.timemap.build_time_map``, predicted times when sane)."""
    return build_time_map(np.asarray(stamps, np.float64), frame_times)


def depth_scale(field: TrajectoryField, depth: np.ndarray) -> Optional[float]:
    """Metric scale from depth [N, H, W] (NaN invalid) via ``field.scale.metric_scale_from_depth`` (frame 0)."""
    if depth is None:
        return None
    est = metric_scale_from_depth(field, depth)
    return float(est.scale) if est.ok else None


def forecast(ctrl: np.ndarray, tmap: TimeMap, horizon_s: float, num_samples: int, decay_s: float,
             d_axis: int = 0, conf_ctrl=None) -> Forecast:
    """Explicit extrapolation past the newest frame (``field.forecast.forecast_curves``, velocity mode)."""
    return forecast_curves(ctrl, tmap, horizon_s, d_axis=d_axis, mode="velocity", conf_ctrl=conf_ctrl,
                           num_samples=num_samples, decay_s=decay_s)


# ------------------------------------------------------------------------------------------------- motion
@dataclass
class MotionOut:
    """What the pipeline needs from motion analysis, on the field's H x W grid, for the newest frame."""

    mask: np.ndarray            # bool [H, W]
    labels: np.ndarray          # uint16 [H, W], 0 = static / background
    objects: list               # of dict(id, pixel_count, roi=(x, y, w, h) grid px, centroid[3], velocity[3],
                                #          confidence, pixels=(rows, cols))
    source: str = "motion"


def analyze_motion(field: TrajectoryField, depth: Optional[np.ndarray], params: dict,
                   tmap: TimeMap) -> MotionOut:
    """``motion.analyze`` when the motion package provides it, else a minimal displacement threshold."""
    try:
        from trace_anything_ros import motion as _motion
        analyze = getattr(_motion, "analyze", None)
    except ImportError:  # pragma: no cover
        analyze = None
    if analyze is not None:
        res = analyze(field, depth, params)
        return _adapt_motion_result(res, field)
    return _fallback_motion(field, params, tmap)


def _adapt_motion_result(res, field: TrajectoryField) -> MotionOut:
    h, w = field.height, field.width
    mask = np.asarray(getattr(res, "mask"))
    if mask.ndim == 3:  # per frame: take the newest
        mask = mask[-1]
    labels = getattr(res, "labels", None)
    if labels is None:
        labels = getattr(res, "instance_labels", None)
    labels = np.zeros((h, w), np.uint16) if labels is None else np.asarray(labels)
    if labels.ndim == 3:
        labels = labels[-1]
    objs = []
    for o in getattr(res, "objects", []) or []:
        get = (lambda k, d=None: o.get(k, d)) if isinstance(o, dict) else (lambda k, d=None: getattr(o, k, d))
        oid = int(get("id", get("label", 0)))
        pix = np.nonzero(labels == oid)
        objs.append(dict(id=oid, pixel_count=int(get("pixel_count", pix[0].size)),
                         roi=tuple(get("roi", get("bbox", _roi(pix)))),
                         centroid=np.asarray(get("centroid", np.zeros(3)), np.float64).reshape(3),
                         velocity=np.asarray(get("velocity", np.zeros(3)), np.float64).reshape(3),
                         confidence=float(get("confidence", 1.0)), pixels=pix))
    return MotionOut(mask.astype(bool), labels.astype(np.uint16), objs, source="motion.analyze")


def _roi(pix):
    rows, cols = pix
    if rows.size == 0:
        return (0, 0, 0, 0)
    return (int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1))


def _fallback_motion(field: TrajectoryField, params: dict, tmap: TimeMap) -> MotionOut:
    import cv2

    thresh = float(params.get("motion_threshold", 0.02))
    min_px = int(params.get("min_object_pixels", 16))
    ctrl = field.ctrl_pts[-1]                                   # [D, H, W, 3] newest frame's curves
    times = field.frame_times.astype(np.float64)
    pos = evaluate(ctrl, times, d_axis=0)                       # [N, H, W, 3]
    ref = pos[-1]
    disp = np.linalg.norm(pos - ref[None], axis=-1).max(axis=0)  # [H, W]
    depth = np.maximum(np.abs(ref[..., 2]), 1e-6)
    mask = (disp / depth) > thresh
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    labels = np.zeros(mask.shape, np.uint16)
    objs = []
    vel = evaluate(ctrl, [times[-1]], d_axis=0, deriv=1)[0] * float(tmap.rate(tmap.frame_stamps[-1:])[0])  # [H, W, 3] per second
    next_id = 1
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_px:
            mask[lab == i] = False
            continue
        pix = np.nonzero(lab == i)
        labels[pix] = next_id
        objs.append(dict(id=next_id, pixel_count=int(pix[0].size), roi=_roi(pix),
                         centroid=ref[pix].mean(axis=0).astype(np.float64),
                         velocity=vel[pix].mean(axis=0).astype(np.float64),
                         confidence=1.0, pixels=pix))
        next_id += 1
    return MotionOut(mask, labels, objs, source="fallback")
