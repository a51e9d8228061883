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

"""The narrow seam between the pipeline and the field / motion packages.

Everything the pipeline needs from ``trace_anything_ros.field`` and ``trace_anything_ros.motion`` goes through the
functions here, so that an API change there touches one file.
"""
from __future__ import annotations

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


def forecast_params(history_s: float, tolerance: float, threshold: float):
    """``motion.forecast.ForecastParams`` from the node's parameters (the motion threshold bounds static pixels)."""
    from trace_anything_ros.motion.forecast import ForecastParams

    return ForecastParams(history_s=float(history_s), tolerance=float(tolerance),
                          static_rel=float(threshold)).validate()


def forecast_stamps(tmap: TimeMap, horizon_s: float, num_samples: int, max_horizon_s: float) -> np.ndarray:
    """Forecast sample stamps (s) after the newest frame (``field.forecast.forecast_stamps``)."""
    from trace_anything_ros.field.forecast import forecast_stamps as _fs

    return _fs(tmap, horizon_s, num_samples=num_samples, max_horizon_s=max_horizon_s)[0]


def forecast_points(points, object_ids, models: dict, lead, window_s: float, params, near_ids=None):
    """Points moved by their objects' motion models, others held still: ``(positions [M, K, 3], sigma [M, K],
    confidence [M, K])`` (``motion.forecast.forecast_points``; ``near_ids``: see there)."""
    from trace_anything_ros.motion.forecast import forecast_points as _fp

    return _fp(points, object_ids, models, lead, window_s, params, near_ids)


def near_objects(labels, params):
    """``[H, W]`` label of the object next to each pixel of no object (within ``params.rim_px``), else -1
    (``motion.forecast.near_objects``)."""
    from trace_anything_ros.motion.forecast import ForecastParams, near_objects as _no

    return _no(labels, (params or ForecastParams()).rim_px)


# ------------------------------------------------------------------------------------------------- motion
def motion_params(threshold: float, min_area: int, horizon_s: float, samples: int, decay_s: float = 0.0,
                  forecast=None):
    """``motion.MotionParams`` from the node's parameters (``forecast``: ``ForecastParams`` of the object motion
    models, see :func:`forecast_params`; ``decay_s`` is unused since forecasts carry a calibrated confidence)."""
    from trace_anything_ros.motion import MotionParams

    return MotionParams(frame=-1, min_rel_motion=float(threshold), min_area=int(min_area),
                        min_part_area=max(3, min(12, int(min_area))),
                        forecast_horizon_s=float(horizon_s) if horizon_s > 0 else 0.5,
                        forecast_samples=max(1, int(samples)), use_depth_scale=True, forecast_model=forecast)


def object_tracker():
    from trace_anything_ros.motion import ObjectTracker

    return ObjectTracker()


def analyze_motion(field: TrajectoryField, depth: Optional[np.ndarray], params, tracker=None, images=None):
    """``motion.analyze`` on the newest frame: MotionResult (mask, labels, objects with forecasts). ``images``: the
    window's RGB at the field's resolution (parts whose motion the images cannot show, see ``motion.aperture``)."""
    from trace_anything_ros.motion import analyze

    return analyze(field, depth, params, tracker=tracker, images=images)
