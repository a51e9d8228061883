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
texture would show ``B``'s motion and does not (a textured static object next to a mover) is left alone. ROS-free.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from ..field.camera import project


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
