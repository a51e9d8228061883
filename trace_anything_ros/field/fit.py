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

"""Least-squares fitting of control points to sampled positions, and resampling to other control-point counts."""
from __future__ import annotations

import numpy as np

from . import basis as _basis
from .evaluate import apply_basis


def _second_difference(D: int) -> np.ndarray:
    if D < 3:
        return np.zeros((0, D))
    return np.diff(np.eye(D), n=2, axis=0)


def fit_control_points(t, samples, num_ctrl: int, weights=None, t_axis: int = 0, smooth: float = 1e-9):
    """Control points that best reproduce ``samples`` at normalised times ``t`` (weighted least squares).

    ``samples`` has the sample axis at ``t_axis`` (e.g. ``[T, H, W, 3]`` or ``[P, T, 3]`` with t_axis=1); the
    result has ``num_ctrl`` in its place. ``weights``: ``[T]`` (one system for every curve: one solve) or the
    shape of ``samples`` without a trailing coordinate axis (per-curve weights: batched solves). NaN samples get
    zero weight. ``smooth`` adds a second-difference penalty (relative to the normal matrix's scale) so that
    under-determined fits (fewer distinct times than control points, or segments without samples) stay smooth
    and well-posed; with enough samples it changes the result by O(smooth).
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    samples = np.asarray(samples, dtype=np.float64)
    t_axis = t_axis % samples.ndim
    T = samples.shape[t_axis]
    if t.shape != (T,):
        raise ValueError(f"t has shape {t.shape}, samples have {T} samples along axis {t_axis}")
    B = _basis.basis_matrix(t, num_ctrl)  # [T, D]
    L = _second_difference(num_ctrl)
    R = L.T @ L
    x = np.moveaxis(samples, t_axis, 0)  # [T, ...]
    rest = x.shape[1:]
    finite = np.isfinite(x)
    per_sample = weights is None or np.ndim(weights) == 1
    if per_sample and finite.all():
        w = np.ones(T) if weights is None else np.asarray(weights, dtype=np.float64).reshape(T)
        if np.any(w < 0):
            raise ValueError("weights must be non-negative")
        A = B.T @ (w[:, None] * B)
        A = A + smooth * max(np.trace(A), 1e-12) / num_ctrl * R + 1e-15 * np.eye(num_ctrl)
        # the [D, T] fitting operator once, then one matmul (solving with every curve as a right-hand side cost
        # ~0.13 s for a 4 x 96 x 128 field)
        P = (np.linalg.solve(A, B.T * w[None, :]) @ x.reshape(T, -1)).reshape((num_ctrl,) + rest)
        return np.moveaxis(P, 0, t_axis)
    # per-curve weights (or NaNs): batched normal equations over every curve
    if weights is None:
        w = np.ones(x.shape)
    else:
        w = np.asarray(weights, dtype=np.float64)
        w = np.moveaxis(w, t_axis, 0) if w.ndim > 1 else w.reshape((T,) + (1,) * (x.ndim - 1))
        if w.ndim < x.ndim:  # per-curve weights without a coordinate axis -> shared over coordinates
            w = w[..., None]
        w = np.broadcast_to(w, x.shape)
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    w = np.where(finite, w, 0.0)
    x = np.where(finite, x, 0.0)
    M = int(np.prod(rest, dtype=np.int64))
    wf = w.reshape(T, M)
    xf = x.reshape(T, M)
    A = np.einsum("td,te,tm->mde", B, B, wf)  # [M, D, D]
    tr = np.trace(A, axis1=1, axis2=2)[:, None, None]
    A = A + smooth * np.maximum(tr, 1e-12) / num_ctrl * R[None] + 1e-12 * np.eye(num_ctrl)[None]
    rhs = np.einsum("td,tm->md", B, wf * xf)[..., None]
    P = np.linalg.solve(A, rhs)[..., 0]  # [M, D]
    P = P.T.reshape((num_ctrl,) + rest)
    return np.moveaxis(P, 0, t_axis)


def resample_matrix(num_ctrl_in: int, num_ctrl_out: int) -> np.ndarray:
    """``R [D_out, D_in]``: control points of the least-squares best ``D_out`` curve to a ``D_in`` curve.

    Exact (up to rounding) whenever the target can represent the source (same count, or the source's segment
    count divides the target's: 4 -> 7, 4 -> 10, 7 -> 13, ...); otherwise (e.g. 10 -> 7) the end points are kept
    exactly and the interior is the L2-best approximation.
    """
    _basis.num_segments(num_ctrl_in)
    s_out = _basis.num_segments(num_ctrl_out)
    s_in = _basis.num_segments(num_ctrl_in)
    # dense samples, 16 per segment of the finer partition, both ends included
    n = 16 * max(s_in, s_out) * 3 + 1
    ts = np.linspace(0.0, 1.0, n)
    B_in = _basis.basis_matrix(ts, num_ctrl_in)
    B_out = _basis.basis_matrix(ts, num_ctrl_out)
    # end points are kept exactly (clamped curves interpolate them), the interior is an L2 fit
    E_in = np.zeros((2, num_ctrl_in))
    E_in[0, 0] = E_in[1, -1] = 1.0
    target = B_in - B_out[:, [0]] @ E_in[:1] - B_out[:, [-1]] @ E_in[1:]
    R_mid, *_ = np.linalg.lstsq(B_out[:, 1:-1], target, rcond=None)
    return np.concatenate([E_in[:1], R_mid, E_in[1:]], 0)


def resample(ctrl, num_ctrl_out: int, d_axis: int = 0) -> np.ndarray:
    """Control points with ``num_ctrl_out`` control points along ``d_axis`` (4, 7, 10, ...)."""
    ctrl = np.asarray(ctrl)
    D = ctrl.shape[d_axis]
    if D == num_ctrl_out:
        return ctrl.copy()
    return apply_basis(resample_matrix(D, num_ctrl_out), ctrl, d_axis)


def resample_field(field, num_ctrl_out: int):
    """A copy of ``field`` with ``num_ctrl_out`` control points (positions and confidences)."""
    from dataclasses import replace

    return replace(field, ctrl_pts=resample(field.ctrl_pts, num_ctrl_out, 1).astype(field.ctrl_pts.dtype),
                   ctrl_conf=resample(field.ctrl_conf, num_ctrl_out, 1).astype(field.ctrl_conf.dtype),
                   extras=dict(field.extras))


def fit_field_from_samples(t, positions, num_ctrl: int, weights=None, smooth: float = 1e-9) -> np.ndarray:
    """Convenience: ``positions [N, T, H, W, 3]`` sampled at ``t [T]`` -> ``ctrl_pts [N, D, H, W, 3]`` float32."""
    return fit_control_points(t, positions, num_ctrl, weights=weights, t_axis=1, smooth=smooth).astype(np.float32)
