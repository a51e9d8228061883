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

"""Cubic B-spline basis of the Trace Anything curves.

The curves are cubic, clamped, with triple interior knots, which is exactly a piecewise cubic Bezier curve with
``S = (D - 1) / 3`` segments over normalised time ``t`` in [0, 1]:

    s = min(floor(t * S), S - 1),   u = t * S - s
    x(t) = (1-u)^3 P[3s] + 3u(1-u)^2 P[3s+1] + 3u^2(1-u) P[3s+2] + u^3 P[3s+3]

A basis matrix ``B`` of shape ``[T, D]`` turns control points ``P[..., D, C]`` into samples ``B @ P``. ``t`` is
clamped to [0, 1] here: extrapolation past the window is explicit (see ``field.forecast``), never implied.
The torch variant is export-friendly (no ``.item()``, no data-dependent Python branches).
"""
from __future__ import annotations

import numpy as np

VALID_CONTROL_POINTS = (4, 7, 10, 13, 16)


def num_segments(num_ctrl: int) -> int:
    if num_ctrl < 4 or (num_ctrl - 1) % 3 != 0:
        raise ValueError(f"control-point count must be 3*S+1 with S >= 1 (4, 7, 10, ...), got {num_ctrl}")
    return (num_ctrl - 1) // 3


def knots(num_ctrl: int) -> np.ndarray:
    """Clamped knot vector with triple interior knots, for documentation and cross-checks."""
    s = num_segments(num_ctrl)
    interior = np.repeat(np.arange(1, s) / s, 3)
    return np.concatenate([np.zeros(4), interior, np.ones(4)])


def _segment_and_u(t: np.ndarray, s: int):
    ts = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0) * s
    seg = np.minimum(np.floor(ts), s - 1).astype(np.int64)
    return seg, ts - seg


def basis_matrix(t, num_ctrl: int, dtype=np.float64) -> np.ndarray:
    """Basis ``[T, D]`` at times ``t`` (clamped to [0, 1]). Rows sum to 1."""
    s = num_segments(num_ctrl)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    seg, u = _segment_and_u(t.reshape(-1), s)
    w = np.stack([(1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u**2 * (1 - u), u**3], axis=-1)
    out = np.zeros((t.size, num_ctrl), dtype=np.float64)
    cols = 3 * seg[:, None] + np.arange(4)[None, :]
    np.put_along_axis(out, cols, w, axis=1)
    return out.reshape(t.shape + (num_ctrl,)).astype(dtype, copy=False)


def basis_derivative_matrix(t, num_ctrl: int, order: int = 1, dtype=np.float64) -> np.ndarray:
    """d^order/dt^order of the basis ``[T, D]`` (derivative w.r.t. normalised time t, not u)."""
    if order not in (1, 2):
        raise ValueError("order must be 1 or 2")
    s = num_segments(num_ctrl)
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    seg, u = _segment_and_u(t.reshape(-1), s)
    if order == 1:
        w = np.stack([-3 * (1 - u) ** 2, 3 * (1 - u) ** 2 - 6 * u * (1 - u), 6 * u * (1 - u) - 3 * u**2, 3 * u**2],
                     axis=-1) * s
    else:
        w = np.stack([6 * (1 - u), -12 * (1 - u) + 6 * u, 6 * (1 - u) - 12 * u, 6 * u], axis=-1) * s * s
    out = np.zeros((t.size, num_ctrl), dtype=np.float64)
    cols = 3 * seg[:, None] + np.arange(4)[None, :]
    np.put_along_axis(out, cols, w, axis=1)
    return out.reshape(t.shape + (num_ctrl,)).astype(dtype, copy=False)


def basis_matrix_torch(t, num_ctrl: int):
    """Torch basis ``[..., D]`` for a tensor ``t`` of any shape; traceable and ONNX-exportable."""
    import torch

    s = num_segments(num_ctrl)
    ts = t.clamp(0.0, 1.0) * s
    seg = torch.clamp(torch.floor(ts), max=s - 1)
    u = ts - seg
    w = torch.stack([(1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u**2 * (1 - u), u**3], dim=-1)  # [..., 4]
    idx = torch.arange(num_ctrl, device=t.device, dtype=t.dtype)  # [D]
    local = idx - 3 * seg.unsqueeze(-1)  # [..., D] position of column within the active segment
    out = torch.zeros(t.shape + (num_ctrl,), dtype=t.dtype, device=t.device)
    for k in range(4):  # four Bernstein terms, static loop (not over control points)
        out = out + (local == k).to(t.dtype) * w[..., k:k + 1]
    return out


def basis_matrix_extrapolated(t, num_ctrl: int, order: int = 1, deriv: int = 0, dtype=np.float64) -> np.ndarray:
    """Basis ``[T, D]`` valid for any real ``t``: the spline inside [0, 1], an explicit Taylor extension outside.

    Outside [0, 1] the curve continues as the Taylor polynomial of degree ``order`` at the nearest end
    (``order=1``: constant velocity, ``order=2``: constant acceleration). ``deriv`` (0, 1 or 2) gives the
    matching derivative w.r.t. normalised time. Rows sum to 1 for ``deriv=0`` (0 otherwise), the extension is
    C^order-continuous at t = 0 and t = 1, and inside [0, 1] this equals ``basis_matrix`` /
    ``basis_derivative_matrix``. Use this only where extrapolation is intended (forecasting).
    """
    if order not in (1, 2):
        raise ValueError("order must be 1 (velocity) or 2 (acceleration)")
    if deriv not in (0, 1, 2):
        raise ValueError("deriv must be 0, 1 or 2")
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    flat = t.reshape(-1)
    if deriv == 0:
        out = basis_matrix(flat, num_ctrl)
    else:
        out = basis_derivative_matrix(flat, num_ctrl, order=deriv)
    for end, mask in ((1.0, flat > 1.0), (0.0, flat < 0.0)):
        if not np.any(mask):
            continue
        h = (flat[mask] - end)[:, None]
        b0 = basis_matrix([end], num_ctrl)
        b1 = basis_derivative_matrix([end], num_ctrl, order=1)
        b2 = basis_derivative_matrix([end], num_ctrl, order=2) if order == 2 else np.zeros_like(b1)
        if deriv == 0:
            ext = b0 + h * b1 + 0.5 * h * h * b2
        elif deriv == 1:
            ext = b1 + h * b2
        else:
            ext = np.broadcast_to(b2, (h.shape[0], num_ctrl))
        out[mask] = ext
    return out.reshape(t.shape + (num_ctrl,)).astype(dtype, copy=False)
