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

"""Forecasting past the window: explicit extrapolation of curves (pixels, object centroids) and SE(3) tracks.

Nothing here clamps t silently: stamps after the window map to normalised times past the newest frame's time
(possibly > 1) through the :class:`~trace_anything_ros.field.timemap.TimeMap`; inside [0, 1] the spline itself is
used, past 1 its Taylor extension at t = 1 (``mode="velocity"``: constant velocity from the curve's end
derivative, ``"acceleration"``: plus its end second derivative). The horizon is clamped to ``max_horizon_s``
(reported in ``clamped``) and confidence decays with the lead time h as ``exp(-h / decay_s)`` (``decay_s``
defaults to the window duration). Samples carry absolute stamps in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .evaluate import evaluate_curves
from .rigid import apply as rigid_apply, se3_exp, se3_log
from .timemap import TimeMap

MODES = {"velocity": 1, "acceleration": 2}


@dataclass
class Forecast:
    stamps: np.ndarray  # [K] seconds, after the newest frame
    times: np.ndarray  # [K] normalised times (may exceed 1: explicit extrapolation)
    positions: np.ndarray  # control-point axis replaced by K, e.g. [K, 3] or [n, K, H, W, 3]
    confidence: np.ndarray  # like positions without the coordinate axis, or [K] (the decay) without conf curves
    decay: np.ndarray  # [K] multiplicative confidence decay in (0, 1]
    mode: str
    horizon_s: float  # effective (possibly clamped) horizon
    clamped: bool  # the requested horizon exceeded max_horizon_s


def forecast_stamps(time_map: TimeMap, horizon_s: float, step_s: Optional[float] = None,
                    num_samples: Optional[int] = None, max_horizon_s: Optional[float] = None):
    """Forecast sample stamps after the newest frame: ``(stamps [K], effective_horizon, clamped)``."""
    if not (np.isfinite(horizon_s) and horizon_s > 0):
        raise ValueError(f"horizon_s must be positive, got {horizon_s}")
    fs = time_map.frame_stamps
    dur = float(fs[-1] - fs[0])
    if max_horizon_s is None:
        max_horizon_s = 2.0 * dur if dur > 0 else horizon_s
    clamped = horizon_s > max_horizon_s
    h = float(min(horizon_s, max_horizon_s))
    if num_samples is None:
        if step_s is None:
            step_s = dur / (len(fs) - 1) if len(fs) > 1 and dur > 0 else h
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        num_samples = max(1, int(np.ceil(h / step_s - 1e-9)))
    if num_samples < 1:
        raise ValueError("num_samples must be >= 1")
    stamps = fs[-1] + h * np.arange(1, num_samples + 1) / num_samples
    return stamps, h, clamped


def confidence_decay(lead_s: np.ndarray, decay_s: float) -> np.ndarray:
    return np.exp(-np.maximum(np.asarray(lead_s, dtype=np.float64), 0.0) / max(decay_s, 1e-9))


def forecast_curves(ctrl, time_map: TimeMap, horizon_s: float, d_axis: int = 0, mode: str = "velocity",
                    conf_ctrl=None, step_s: Optional[float] = None, num_samples: Optional[int] = None,
                    max_horizon_s: Optional[float] = None, decay_s: Optional[float] = None) -> Forecast:
    """Extrapolate curves (control-point axis ``d_axis``) for ``horizon_s`` seconds after the newest frame.

    ``conf_ctrl`` (same layout without the coordinate axis) gives per-curve confidence: the curve's confidence at
    its newest frame time times the decay. ``decay_s`` defaults to the window duration (1 s if zero).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {tuple(MODES)}, got {mode!r}")
    stamps, h, clamped = forecast_stamps(time_map, horizon_s, step_s, num_samples, max_horizon_s)
    times = time_map.to_time(stamps)
    pos = evaluate_curves(ctrl, times, d_axis=d_axis, extrapolate=MODES[mode])
    dur = time_map.duration
    decay = confidence_decay(stamps - time_map.frame_stamps[-1], decay_s if decay_s else (dur if dur > 0 else 1.0))
    if conf_ctrl is not None:
        t_end = float(time_map.frame_times[-1])
        c_end = evaluate_curves(conf_ctrl, [t_end], d_axis=d_axis)
        shape = [1] * c_end.ndim
        shape[d_axis % c_end.ndim] = decay.size
        conf = c_end * decay.reshape(shape).astype(c_end.dtype)
    else:
        conf = decay.copy()
    return Forecast(stamps, times, pos, conf, decay, mode, h, clamped)


def forecast_field(field, time_map: TimeMap, horizon_s: float, frames=(-1,), **kw) -> Forecast:
    """Forecast the per-pixel curves of ``frames`` (default the newest): positions ``[n, K, H, W, 3]``."""
    idx = np.atleast_1d(frames)
    return forecast_curves(field.ctrl_pts[idx], time_map, horizon_s, d_axis=1, conf_ctrl=field.ctrl_conf[idx], **kw)


def forecast_se3(stamps, R, t, ref_index: int = -1, horizon_s: float = 1.0, points=None,
                 step_s: Optional[float] = None, num_samples: Optional[int] = None,
                 max_horizon_s: Optional[float] = None, decay_s: Optional[float] = None,
                 fit_span_s: Optional[float] = None):
    """Constant-twist forecast of a rigid track.

    ``R [T, 3, 3]``, ``t [T, 3]``: pose at each stamp mapping the object's points at the reference stamp
    (``ref_index``, identity there) to that stamp. The twist is estimated from the sample ``fit_span_s`` seconds
    before the reference (default: the oldest) as ``log(T_k) / (s_k - s_ref)``. Returns
    ``(Forecast-like dict: stamps, R [K,3,3], t [K,3], points [K,M,3] if points given, decay, horizon_s,
    clamped, twist [6])``.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    ref = ref_index % len(stamps)
    s_ref = stamps[ref]
    cand = np.arange(len(stamps)) != ref
    if not np.any(cand):
        twist = np.zeros(6)
    else:
        target = s_ref - (fit_span_s if fit_span_s is not None else (s_ref - stamps.min()))
        k = np.flatnonzero(cand)[np.argmin(np.abs(stamps[cand] - target))]
        ds = stamps[k] - s_ref
        twist = se3_log(R[k], t[k]) / ds if ds != 0 else np.zeros(6)
    dur = float(stamps.max() - stamps.min())
    if max_horizon_s is None:
        max_horizon_s = 2.0 * dur if dur > 0 else horizon_s
    clamped = horizon_s > max_horizon_s
    h = float(min(horizon_s, max_horizon_s))
    if num_samples is None:
        step = step_s if step_s else (dur / (len(stamps) - 1) if len(stamps) > 1 and dur > 0 else h)
        num_samples = max(1, int(np.ceil(h / step - 1e-9)))
    fs = stamps[-1] + h * np.arange(1, num_samples + 1) / num_samples
    Rf, tf = se3_exp(twist[None, :] * (fs - s_ref)[:, None])
    out = {"stamps": fs, "R": Rf, "t": tf, "twist": twist, "horizon_s": h, "clamped": clamped,
           "decay": confidence_decay(fs - stamps[-1], decay_s if decay_s else (dur if dur > 0 else 1.0))}
    if points is not None:
        out["points"] = rigid_apply(Rf, tf, np.asarray(points, dtype=np.float64)[None])
    return out
