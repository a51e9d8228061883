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

"""Motion the images cannot show: a textureless part sliding along itself takes the motion of the part it touches.

Images only constrain motion across their edges (the aperture problem): a uniformly coloured robot link or forearm
moving along its own axis changes no pixel except at its ends, so every image-based estimator -- the geometric
flow field, the depth-aware network, the official model -- gives it the least motion the images allow: none. The
segmentation then splits one rigid body into a fast part (the textured hand or gripper at its end) and a "static"
large part, and the forecasts hold the large part still while it moves with the rest.

:func:`aperture_merges` finds such pairs after segmentation: a segmented part ``A`` that touches (in the image and
in 3D) a part ``B`` moving clearly faster, where ``B``'s motion, projected into the image at ``A``'s pixels, runs
along ``A``'s edges -- the fraction of ``A``'s image-gradient energy along that motion (away from the joint) is
below ``max_energy``. Then nothing in the images contradicts ``A`` moving with ``B``, and the touching rigid body is
the simpler explanation; :func:`adopt_motion` gives ``A``'s pixels ``B``'s translation over the window. A part whose
texture would show ``B``'s motion and does not (a textured static object next to a mover) is left alone.

The same holds inside one object: a gripper segmented as one piece is mostly its long uniform forearm, whose pixels
the field holds still while the palm moves, so the plain mean of its pixels' motion is a fraction of the true one.
:func:`translation_gains` weighs each pixel's motion by what its surroundings can show (the information a
point-to-plane + photometric alignment would have): its surface normal (from the field's own points: the motion
across the surface, which depth shows) and its image gradient's direction lifted through the projection (the motion
across the texture's edges, which the image shows), so that the object's translation along its forearm comes from
the palm and the fingers; directions no pixel shows keep the plain mean. ROS-free.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from ..field.camera import project

GRAD_SIGMA = 10.0    # Sobel units (3 x 3, grey 0-255): a pixel's photometric weight is |g|^2 / (|g|^2 + GRAD_SIGMA^2)
NORMAL_WEIGHT = 1.0  # weight of the depth (surface normal) constraint against a fully textured pixel's
RIDGE = 0.02         # directions whose summed information is below this (per pixel, on average) fall back to the mean


def aperture_merges(labels: np.ndarray, X: np.ndarray, ref: int, image: np.ndarray, K: np.ndarray,
                    threshold: float, max_energy: float = 0.2, ring_px: int = 2, min_pixels: int = 5) -> Dict[int, int]:
    """``{A: B}``: labels ``A`` whose pixels should move with label ``B``.

    ``labels [H, W]`` (0 = static), ``X [N, H, W, 3]`` the analysed pixels' positions at the window's frame times
    (field units, the field's frame), ``image [H, W, 3]`` (or ``[H, W]``) the analysed frame, ``K`` its intrinsics
    on that grid, ``threshold`` the relative motion threshold over the window (the dynamic mask's). ``B`` qualifies
    when its centroid moved more than ``threshold`` (relative to depth) and more than twice ``A``'s, it touches ``A``
    (within ``ring_px`` pixels, and in 3D within ``3 ring_px`` pixel footprints), and the fraction of ``A``'s squared
    image gradient along ``B``'s image motion, over ``A``'s pixels away from ``B``, is below ``max_energy``. Chains
    (A -> B -> C) resolve to their end."""
    import cv2

    lab = np.asarray(labels)
    ids = [int(i) for i in np.unique(lab) if i > 0]
    if len(ids) < 2 or max_energy <= 0:
        return {}
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    grey = np.asarray(grey, np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    far = int(np.argmax(np.abs(np.arange(X.shape[0]) - ref)))
    kern = np.ones((2 * ring_px + 1, 2 * ring_px + 1), np.uint8)
    masks, disp, rel, z = {}, {}, {}, {}
    for i in ids:
        m = lab == i
        P = X[:, m].astype(np.float64)                                   # [N, m, 3]
        ok = np.all(np.isfinite(P), axis=(0, 2))
        if ok.sum() < min_pixels:
            continue
        masks[i] = m
        disp[i] = P[ref, ok].mean(0) - P[far, ok].mean(0)
        z[i] = float(np.median(np.abs(P[ref, ok, 2])))
        rel[i] = float(np.linalg.norm(disp[i])) / max(z[i], 1e-9)
    out: Dict[int, int] = {}
    for a in masks:
        A = masks[a]
        ring = cv2.dilate(A.astype(np.uint8), kern).astype(bool) & ~A
        PA = X[ref][A].astype(np.float64)
        PA = PA[np.all(np.isfinite(PA), 1)]
        foot = z[a] / float(K[0, 0])                                      # one pixel at A's depth
        best = None
        for b in masks:
            if b == a or rel[b] <= threshold or rel[b] <= 2.0 * rel[a]:
                continue
            B = masks[b]
            touch = ring & B
            if touch.sum() < 2:
                continue
            PB = X[ref][touch].astype(np.float64)
            PB = PB[np.all(np.isfinite(PB), 1)]
            if not len(PB) or not len(PA):
                continue
            gap = np.min(np.linalg.norm(PA[None, :, :] - PB[:, None, :], axis=-1))
            if gap > 3 * ring_px * foot:
                continue
            away = A & ~cv2.dilate(B.astype(np.uint8), kern).astype(bool)  # A's own edges, not the joint's
            Q = X[ref][away].astype(np.float64)
            good = np.all(np.isfinite(Q), 1) & (Q[:, 2] > 0)
            if good.sum() < min_pixels:
                continue
            Q = Q[good]
            f = project(Q + disp[b], K)[0] - project(Q, K)[0]            # B's image motion at A's pixels
            f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
            g = np.stack([gx[away][good], gy[away][good]], 1).astype(np.float64)
            total = float(np.sum(g ** 2))
            if total <= 0:
                continue
            energy = float(np.sum(np.sum(g * f, 1) ** 2)) / total
            if energy < max_energy and (best is None or energy < best[1]):
                best = (b, energy)
        if best is not None:
            out[a] = best[0]
    for a in list(out):                     # follow chains to their end (no cycles: each step is 2x faster)
        b = out[a]
        for _ in range(len(out)):
            if b not in out:
                break
            b = out[b]
        out[a] = b
    return out


def adopt_motion(X: np.ndarray, ctrl: np.ndarray, labels: np.ndarray, merges: Dict[int, int], ref: int):
    """``X [N, H, W, 3]`` and ``ctrl [D, H, W, 3]`` copies in which each merged label's pixels move with their
    target's centroid (its curve minus its position at the analysed frame: a translation, added to each pixel's
    position there; the B-spline basis sums to one, so the same offset curve is exact on the control points) and
    the labels relabelled. Returns ``(X, ctrl, labels)``."""
    X = np.array(X, copy=True)
    ctrl = np.array(ctrl, copy=True)
    lab = np.array(labels, copy=True)
    for a, b in merges.items():
        A, B = labels == a, labels == b
        cb = np.nanmean(X[:, B].astype(np.float64), axis=1)                        # [N, 3] B's centroid curve
        cb_ctrl = np.nanmean(ctrl[:, B].astype(np.float64), axis=1)                # [D, 3] its control points
        here = X[ref][A].astype(np.float64)                                         # [m, 3]
        X[:, A] = (here[None] + (cb - cb[ref])[:, None, :]).astype(X.dtype)
        ctrl[:, A] = (here[None] + (cb_ctrl - cb[ref])[:, None, :]).astype(ctrl.dtype)
        lab[A] = b
    return X, ctrl, lab


def translation_gains(points: np.ndarray, sel: np.ndarray, image: np.ndarray, K: np.ndarray,
                      weights: np.ndarray) -> np.ndarray:
    """``G [m, 3, 3]`` with ``sum_m G_m = I``: the object's translation is ``sum_m G_m d_m`` for its pixels'
    displacements ``d_m`` (``sel``'s pixels in row-major order), an information-weighted mean.

    ``points [H, W, 3]`` the analysed frame's positions (the field's frame), ``sel [H, W]`` the object's pixels,
    ``image [H, W(, 3)]`` the analysed frame, ``K`` its intrinsics on that grid, ``weights [m]`` the pixels' weights
    (summing to one). Pixel ``m`` contributes ``I_m = w_g c c^T + NORMAL_WEIGHT n n^T``: ``c`` the direction in
    which a 3D displacement moves the pixel across its image gradient (``J^T g``, J the projection's Jacobian),
    ``w_g`` how strong that gradient is; ``n`` the surface normal from the neighbouring points of the same object.
    ``G_m = (A + RIDGE I)^-1 w_m (I_m + RIDGE I)`` with ``A = sum_m w_m I_m``: a pure translation of every pixel
    is returned exactly; a direction no pixel's surroundings show takes the plain weighted mean."""
    import cv2

    P = np.asarray(points, np.float64)
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    grey = np.asarray(grey, np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)[sel].astype(np.float64)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)[sel].astype(np.float64)
    Q = P[sel]
    z = np.maximum(np.abs(Q[:, 2]), 1e-9)
    c = np.stack([K[0, 0] * gx / z, K[1, 1] * gy / z, -(K[0, 0] * Q[:, 0] * gx + K[1, 1] * Q[:, 1] * gy) / (z * z)], 1)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-300)
    g2 = gx * gx + gy * gy
    wg = g2 / (g2 + GRAD_SIGMA ** 2)
    # normals: central differences between neighbours that belong to the object too
    H, W = sel.shape
    inner = np.zeros((H, W), bool)
    inner[1:-1, 1:-1] = sel[1:-1, 2:] & sel[1:-1, :-2] & sel[2:, 1:-1] & sel[:-2, 1:-1]
    du = np.zeros_like(P)
    dv = np.zeros_like(P)
    du[:, 1:-1] = P[:, 2:] - P[:, :-2]
    dv[1:-1] = P[2:] - P[:-2]
    n = np.cross(du[sel], dv[sel])
    nn = np.linalg.norm(n, axis=1, keepdims=True)
    has_n = inner[sel] & np.isfinite(nn[:, 0]) & (nn[:, 0] > 0)
    n = np.where(has_n[:, None], n / np.maximum(nn, 1e-300), 0.0)
    c = np.where(np.isfinite(c), c, 0.0)
    info = (wg[:, None, None] * c[:, :, None] * c[:, None, :]
            + NORMAL_WEIGHT * n[:, :, None] * n[:, None, :]) + RIDGE * np.eye(3)[None]
    w = np.asarray(weights, np.float64).reshape(-1)
    WI = w[:, None, None] * info
    return np.einsum("ij,mjk->mik", np.linalg.inv(WI.sum(0)), WI)
