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

"""Batched rigid-motion helpers: weighted Kabsch, SE(3) exp/log (numpy, no loops over points); a RANSAC plane."""
from __future__ import annotations

import numpy as np


def weighted_kabsch(P, Q, w=None):
    """Batched weighted Kabsch. ``P, Q [..., M, 3]``, ``w [..., M]`` (>= 0, not all zero) -> ``R [..., 3, 3]``,
    ``t [..., 3]`` minimising sum w |R p + t - q|^2 (proper rotations only: det R = +1)."""
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if w is None:
        w = np.ones(np.broadcast_shapes(P.shape, Q.shape)[:-1])
    w = np.asarray(w, dtype=np.float64)
    ws = w.sum(-1, keepdims=True)
    wn = w / np.where(ws > 0, ws, 1.0)
    # Weighted sums as matmuls (numpy reductions over a trailing axis of 3 are slow).
    cp = (wn[..., None, :] @ P)[..., 0, :]
    cq = (wn[..., None, :] @ Q)[..., 0, :]
    # sum w (p - cp)(q - cq)^T = sum w p q^T - cp cq^T (weights normalised)
    H = np.swapaxes(P * wn[..., None], -1, -2) @ Q - cp[..., :, None] * cq[..., None, :]
    U, _, Vt = np.linalg.svd(H)
    V = np.swapaxes(Vt, -1, -2)
    d = np.sign(np.linalg.det(V @ np.swapaxes(U, -1, -2)))
    d = np.where(d == 0, 1.0, d)
    V = V.copy()
    V[..., :, 2] *= d[..., None]
    R = V @ np.swapaxes(U, -1, -2)
    t = cq - np.einsum("...ij,...j->...i", R, cp)
    return R, t


def kabsch_shared(P, Pt, Q, Qt, w):
    """``weighted_kabsch`` of shared points ``P [M, 3]`` (``Pt`` = P.T) to ``Q [F, M, 3]`` (``Qt`` = Q as
    [F, 3, M]) under weights ``w [F, M]``, written as GEMMs."""
    ws = w.sum(-1, keepdims=True)
    wn = w / np.where(ws > 0, ws, 1.0)
    cp = wn @ P  # [F, 3]
    cq = (Qt @ wn[:, :, None])[..., 0]  # [F, 3]
    H = (Pt[None] * wn[:, None, :]) @ Q - cp[:, :, None] * cq[:, None, :]
    U, _, Vt = np.linalg.svd(H)
    V = np.swapaxes(Vt, -1, -2).copy()
    d = np.sign(np.linalg.det(V) * np.linalg.det(U))
    V[..., :, 2] *= np.where(d == 0, 1.0, d)[..., None]
    R = V @ np.swapaxes(U, -1, -2)
    return R, cq - (R @ cp[..., None])[..., 0]


def kabsch(src: np.ndarray, dst: np.ndarray, w=None):
    """Best rigid ``(R, t)`` with ``dst ~ R @ src + t`` for batches: src/dst ``[..., M, 3]``, w ``[..., M]``.

    Returns ``R [..., 3, 3]`` (proper rotations, det +1) and ``t [..., 3]`` (``weighted_kabsch``)."""
    if w is not None:
        w = np.broadcast_to(np.asarray(w, dtype=np.float64), np.shape(src)[:-1])
    return weighted_kabsch(src, dst, w)


def apply(R, t, x):
    """``R @ x + t`` for points ``x [..., M, 3]`` with batched ``R [..., 3, 3]``, ``t [..., 3]``."""
    return np.einsum("...ij,...mj->...mi", R, x) + t[..., None, :]


def _hat(w):
    W = np.zeros(w.shape[:-1] + (3, 3))
    W[..., 0, 1], W[..., 0, 2] = -w[..., 2], w[..., 1]
    W[..., 1, 0], W[..., 1, 2] = w[..., 2], -w[..., 0]
    W[..., 2, 0], W[..., 2, 1] = -w[..., 1], w[..., 0]
    return W


def so3_log(R):
    R = np.asarray(R, dtype=np.float64)
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    th = np.arccos(cos)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    s = np.sin(th)
    small = s < 1e-6
    f = np.where(small, 0.5 + th**2 / 12, th / (2 * np.where(small, 1.0, s)))
    w = v * f[..., None]
    near_pi = (th > np.pi - 1e-3)
    if np.any(near_pi):  # axis from the symmetric part
        B = (R[near_pi] + np.eye(3)) / 2
        k = np.argmax(np.diagonal(B, axis1=-2, axis2=-1), -1)
        axis = B[np.arange(B.shape[0]), :, k]
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        w[near_pi] = axis * th[near_pi][..., None]
    return w


def so3_exp(w):
    w = np.asarray(w, dtype=np.float64)
    th = np.linalg.norm(w, axis=-1)[..., None, None]
    W = _hat(w)
    small = th < 1e-8
    A = np.where(small, 1.0, np.sin(th) / np.where(small, 1.0, th))
    B = np.where(small, 0.5, (1 - np.cos(th)) / np.where(small, 1.0, th) ** 2)
    return np.eye(3) + A * W + B * (W @ W)


def _V(w):
    th = np.linalg.norm(w, axis=-1)[..., None, None]
    W = _hat(w)
    small = th < 1e-6
    ths = np.where(small, 1.0, th)
    B = np.where(small, 0.5 - th**2 / 24, (1 - np.cos(th)) / ths**2)
    C = np.where(small, 1.0 / 6 - th**2 / 120, (th - np.sin(th)) / ths**3)
    return np.eye(3) + B * W + C * (W @ W)


def se3_log(R, t):
    """Twist ``[..., 6]`` = (omega, v) with ``exp`` giving back ``(R, t)``."""
    w = so3_log(R)
    v = np.linalg.solve(_V(w), np.asarray(t, dtype=np.float64)[..., None])[..., 0]
    return np.concatenate([w, v], -1)


def se3_exp(xi):
    xi = np.asarray(xi, dtype=np.float64)
    w, v = xi[..., :3], xi[..., 3:]
    return so3_exp(w), np.einsum("...ij,...j->...i", _V(w), v)


def fit_plane(points: np.ndarray, threshold: float, iterations: int = 200, seed: int = 0):
    """RANSAC plane ``n . p + d = 0`` of points [M, 3] -> (n, d, inlier ratio); n faces the camera (origin)."""
    rng = np.random.default_rng(seed)
    M = len(points)
    if M < 3:
        raise ValueError("too few depth points for a support plane")
    best, best_n = None, -1
    for _ in range(iterations):
        a, b, c = points[rng.choice(M, 3, replace=False)]
        n = np.cross(b - a, c - a)
        ln = np.linalg.norm(n)
        if ln < 1e-12:
            continue
        n = n / ln
        inl = np.abs(points @ n - n @ a) < threshold
        k = int(inl.sum())
        if k > best_n:
            best, best_n = inl, k
    if best is None:
        raise ValueError("degenerate points: no plane through any sample")
    P = points[best]
    ctr = P.mean(0)
    n = np.linalg.svd(P - ctr, full_matrices=False)[2][-1]
    d = -float(n @ ctr)
    if d < 0:  # the camera (origin) on the positive side: n . 0 + d > 0
        n, d = -n, -d
    return n, d, best_n / M
