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

"""Evaluate trajectory curves: positions, confidences, velocities, accelerations, arc length (numpy + torch).

Every function works on control points with the control-point axis at ``d_axis`` (any leading / trailing
shape) and replaces that axis by the sample-time axis. Internally this is a single matrix product
``basis [T, D] @ ctrl [pre, D, post]`` (BLAS, no Python loops over pixels).

Field-level helpers take a :class:`~trace_anything_ros.field.types.TrajectoryField`:
``ctrl_pts [N, D, H, W, 3]`` -> positions ``[N, T, H, W, 3]``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import basis as _basis
from .types import TrajectoryField


def _as_times(t) -> np.ndarray:
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError(f"times must be a scalar or 1-D, got shape {t.shape}")
    return t


def apply_basis(B: np.ndarray, ctrl: np.ndarray, d_axis: int = 0) -> np.ndarray:
    """``B [T, D]`` applied along axis ``d_axis`` of ``ctrl``; the output has T in place of D."""
    ctrl = np.asarray(ctrl)
    d_axis = d_axis % ctrl.ndim
    D = ctrl.shape[d_axis]
    if B.shape[-1] != D:
        raise ValueError(f"basis has {B.shape[-1]} columns, control points have {D} along axis {d_axis}")
    pre = int(np.prod(ctrl.shape[:d_axis], dtype=np.int64))
    post = int(np.prod(ctrl.shape[d_axis + 1:], dtype=np.int64))
    dtype = np.result_type(ctrl.dtype, np.float32)
    c = np.ascontiguousarray(ctrl, dtype=dtype).reshape(pre, D, post)
    Bd = np.ascontiguousarray(B, dtype=dtype)
    T = B.shape[0]
    # numpy's broadcasting matmul ([T, D] @ [pre, D, post]) bypasses BLAS (measured 200x slower): use 2-D GEMMs
    if pre == 1:
        out = (Bd @ c[0])[None]
    elif pre <= 64:
        out = np.empty((pre, T, post), dtype=dtype)
        for k in range(pre):  # over frames / batch items, never over pixels
            np.matmul(Bd, c[k], out=out[k])
    else:  # many short curves (e.g. sparse tracks [P, D, 3]): one GEMM on [D, pre * post]
        out = (Bd @ c.transpose(1, 0, 2).reshape(D, pre * post)).reshape(T, pre, post).transpose(1, 0, 2)
    return out.reshape(ctrl.shape[:d_axis] + (T,) + ctrl.shape[d_axis + 1:])


def evaluate_curves(ctrl, t, d_axis: int = 0, deriv: int = 0, extrapolate: Optional[int] = None) -> np.ndarray:
    """Curves (or their ``deriv``-th derivative w.r.t. normalised time) at times ``t``.

    ``extrapolate=None`` clamps t to [0, 1] (the spline's domain, like the official model);
    ``extrapolate=1|2`` continues the curves past the ends with a velocity / acceleration Taylor extension.
    """
    t = _as_times(t)
    D = np.shape(ctrl)[d_axis]
    if extrapolate is not None:
        B = _basis.basis_matrix_extrapolated(t, D, order=extrapolate, deriv=deriv)
    elif deriv == 0:
        B = _basis.basis_matrix(t, D)
    else:
        B = _basis.basis_derivative_matrix(t, D, order=deriv)
    return apply_basis(B, ctrl, d_axis)


def evaluate_torch(ctrl, t, d_axis: int = 0):
    """Torch evaluation (clamped t), export-friendly: ``basis_matrix_torch(t) @ ctrl`` along ``d_axis``."""
    import torch

    D = ctrl.shape[d_axis]
    B = _basis.basis_matrix_torch(t.reshape(-1).to(ctrl.dtype), D)  # [T, D]
    c = torch.movedim(ctrl, d_axis, -1)  # [..., D]
    out = torch.matmul(c.unsqueeze(-2), B.transpose(0, 1)).squeeze(-2)  # [..., T]
    return torch.movedim(out, -1, d_axis)


# ------------------------------------------------------------------------------------------------ field level
def field_positions(field: TrajectoryField, t, frames=None, deriv: int = 0,
                    extrapolate: Optional[int] = None) -> np.ndarray:
    """Positions ``[n, T, H, W, 3]`` of the curves of ``frames`` (default all) at normalised times ``t``."""
    ctrl = field.ctrl_pts if frames is None else field.ctrl_pts[np.atleast_1d(frames)]
    return evaluate_curves(ctrl, t, d_axis=1, deriv=deriv, extrapolate=extrapolate)


def field_confidence(field: TrajectoryField, t, frames=None) -> np.ndarray:
    """Confidences ``[n, T, H, W]`` (the confidence curves use the same basis, clamped t)."""
    conf = field.ctrl_conf if frames is None else field.ctrl_conf[np.atleast_1d(frames)]
    return evaluate_curves(conf, t, d_axis=1)


def evaluate_field(field: TrajectoryField, t, frames=None):
    """``(positions [n, T, H, W, 3], confidences [n, T, H, W])`` at normalised times ``t``."""
    return field_positions(field, t, frames), field_confidence(field, t, frames)


def tracks_at_frame_times(field: TrajectoryField, times=None):
    """The official ``track_pts3d`` layout: ``[i, j]`` = frame i's curves at frame j's time ``[N, N, H, W, 3]``.

    ``times`` defaults to ``field.frame_times`` (model-predicted); pass ``TimeMap.frame_times`` for the
    sanitised times.
    """
    times = field.frame_times if times is None else times
    return evaluate_field(field, times)


def velocity(ctrl, t, rate, d_axis: int = 0, extrapolate: Optional[int] = None) -> np.ndarray:
    """dx/ds in units per second: ``dx/dt * dt/ds``; ``rate`` = dt/ds (scalar or per time ``[T]``)."""
    v = evaluate_curves(ctrl, t, d_axis=d_axis, deriv=1, extrapolate=extrapolate)
    return _scale_time_axis(v, rate, d_axis)


def acceleration(ctrl, t, rate, d_axis: int = 0, extrapolate: Optional[int] = None) -> np.ndarray:
    """d2x/ds2 in units per second^2 for a locally affine time map (``rate`` = dt/ds)."""
    a = evaluate_curves(ctrl, t, d_axis=d_axis, deriv=2, extrapolate=extrapolate)
    r = np.asarray(rate, dtype=np.float64)
    return _scale_time_axis(a, r * r, d_axis)


def _scale_time_axis(x: np.ndarray, factor, d_axis: int) -> np.ndarray:
    f = np.asarray(factor, dtype=np.float64)
    if f.ndim == 0:
        return x * f.astype(x.dtype)
    shape = [1] * x.ndim
    shape[d_axis % x.ndim] = f.size
    return x * f.reshape(shape).astype(x.dtype)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


def arc_length(ctrl, t0: float = 0.0, t1: float = 1.0, d_axis: int = 0, coord_axis: int = -1) -> np.ndarray:
    """Length of each curve between normalised times ``t0 < t1`` (8-point Gauss-Legendre per segment).

    Returns the input shape without the control-point and coordinate axes.
    """
    ctrl = np.asarray(ctrl)
    D = ctrl.shape[d_axis]
    S = _basis.num_segments(D)
    t0, t1 = float(np.clip(t0, 0, 1)), float(np.clip(t1, 0, 1))
    if t1 < t0:
        t0, t1 = t1, t0
    if t1 == t0:
        shape = [s for i, s in enumerate(ctrl.shape) if i not in (d_axis % ctrl.ndim, coord_axis % ctrl.ndim)]
        return np.zeros(shape, dtype=np.float64)
    edges = np.unique(np.concatenate([[t0, t1], np.arange(1, S) / S]))
    edges = edges[(edges >= t0) & (edges <= t1)]
    a, b = edges[:-1, None], edges[1:, None]
    nodes = (0.5 * (b - a) * _GL_X[None, :] + 0.5 * (a + b)).reshape(-1)
    weights = (0.5 * (b - a) * _GL_W[None, :]).reshape(-1)
    dx = evaluate_curves(ctrl, nodes, d_axis=d_axis, deriv=1)  # T in place of D
    c_ax = coord_axis % ctrl.ndim
    speed = np.linalg.norm(dx, axis=c_ax)
    d_ax = d_axis % ctrl.ndim
    t_ax = d_ax if d_ax < c_ax else d_ax - 1
    return np.moveaxis(speed, t_ax, -1) @ weights
