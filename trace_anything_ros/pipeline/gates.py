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

"""Plausibility gates of the perception input and output (ROS-free; the node and the offline tools share them).

Each gate returns ``None`` when its input is plausible, else ``(reason, text)``: ``reason`` is the key of a drop /
warning counter, ``text`` a short human line that never echoes an unbounded string (``clip``). The decisions, one
place (docs/SECURITY.md "Hostile input" lists them with the node's other drop reasons):

* camera matrix (``intrinsics_problem``): finite, fx, fy > 0, |skew| <= fx, fx / fy within [0.2, 5], a field of
  view below ~170 degrees (fx >= width / 23) and above ~0.06 degrees (fx <= 1000 x width), principal point within
  the image extended by half its size, bottom row [0 0 1] -> a camera_info that fails is dropped
  (``invalid_camera_info``).
* sizes (``same_aspect``): camera_info or depth of another size than the image but the same aspect ratio
  (within 1 %) is rescaled with a named warning; another aspect ratio cannot describe the image: the depth is
  dropped (``depth_size_mismatch``), the camera_info is not used for that image (``camera_info_size_mismatch``;
  the image runs without intrinsics rather than being dropped, so a hostile camera_info cannot starve images).
* outputs (``products_problem``): every published number finite and every 3D point within ``max_distance``
  (the node: 2 x ``depth.max_range``) of the camera, else the window is withheld (``implausible_output``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

Problem = Optional[Tuple[str, str]]

ASPECT_TOLERANCE = 0.01  # relative difference of w/h below which two sizes describe the same image
MAX_TEXT = 64            # characters of an input string echoed into a log line or a diagnostics value


def clip(s, n: int = MAX_TEXT) -> str:
    """``repr`` of at most ``n`` characters of ``s`` (and its full length when cut): safe for one log line."""
    s = str(s)
    if len(s) <= n:
        return repr(s)
    return repr(s[:n]) + f"... ({len(s)} chars)"


def aspect_ratio(hw) -> float:
    h, w = int(hw[0]), int(hw[1])
    return max(w / h, h / w) if h > 0 and w > 0 else float("inf")


def same_aspect(a_hw, b_hw, tol: float = ASPECT_TOLERANCE) -> bool:
    """True when (h, w) sizes ``a_hw`` and ``b_hw`` have the same w/h within ``tol`` (relative)."""
    ah, aw, bh, bw = (int(x) for x in (*a_hw, *b_hw))
    if min(ah, aw, bh, bw) <= 0:
        return False
    ra, rb = aw / ah, bw / bh
    return abs(ra - rb) <= tol * max(ra, rb)


def intrinsics_problem(k, hw) -> Problem:
    """Plausibility of a 3x3 camera matrix for an image of (h, w) (the size the matrix describes)."""
    k = np.asarray(k, np.float64).reshape(-1)
    if k.size != 9:
        return "invalid_camera_info", f"K has {k.size} elements, not 9"
    k = k.reshape(3, 3)
    h, w = int(hw[0]), int(hw[1])
    if h <= 0 or w <= 0:
        return "invalid_camera_info", f"camera_info size {w}x{h}"
    if not np.isfinite(k).all():
        return "invalid_camera_info", "K has non-finite entries"
    if abs(k[2, 0]) > 1e-9 or abs(k[2, 1]) > 1e-9 or abs(k[2, 2] - 1.0) > 1e-9 or abs(k[1, 0]) > 1e-9:
        return "invalid_camera_info", f"K is not upper triangular with K[2] = [0 0 1] (bottom row {k[2].tolist()})"
    fx, fy, s, cx, cy = k[0, 0], k[1, 1], k[0, 1], k[0, 2], k[1, 2]
    if not (fx > 0 and fy > 0):
        return "invalid_camera_info", f"focal lengths fx={fx:.6g} fy={fy:.6g} must be positive"
    if not (0.2 <= fx / fy <= 5.0) or abs(s) > fx:
        return "invalid_camera_info", f"fx/fy = {fx / fy:.3g}, skew {s:.3g}: not a camera"
    if fx < w / 23.0 or fy < h / 23.0 or fx > 1000.0 * w or fy > 1000.0 * h:
        return "invalid_camera_info", f"fx={fx:.6g} fy={fy:.6g} for {w}x{h}: a field of view beyond 170 degrees " \
                                      "or below 0.06 degrees"
    if not (-0.5 * w <= cx <= 1.5 * w and -0.5 * h <= cy <= 1.5 * h):
        return "invalid_camera_info", f"principal point ({cx:.6g}, {cy:.6g}) far outside the {w}x{h} image"
    return None


DISTORTION_WARN_PX = 1.0  # a camera_info whose distortion moves a pixel farther than this is not a rectified image
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")   # OpenCV's radial-tangential model, 4-14 coefficients
FISHEYE_MODELS = ("equidistant",)                        # OpenCV's fisheye model, 4 coefficients


def distortion_px(k, d, model: str, hw) -> Optional[float]:
    """How far (px, the largest over a grid reaching the image's edges) the camera_info's distortion moves a pixel
    from where the pinhole ``k`` puts it: 0 for a rectified image (no or zero coefficients), None for a model (or
    number of coefficients) this does not know, or coefficients that are not finite. The nodes lift pixels with K
    alone, as for image_proc's ``image_rect``. An equidistant (fisheye) image is not a pinhole one even with zero
    coefficients."""
    import cv2
    d = np.asarray(d, np.float64).reshape(-1)
    if model not in FISHEYE_MODELS and (d.size == 0 or not np.any(d)):
        return 0.0
    if not np.isfinite(d).all():
        return None
    k = np.asarray(k, np.float64).reshape(3, 3)
    h, w = int(hw[0]), int(hw[1])
    u, v = np.meshgrid(np.linspace(0, w - 1, 9), np.linspace(0, h - 1, 9))
    pts = np.stack([u.ravel(), v.ravel()], -1)[:, None, :]
    try:
        if model in PINHOLE_MODELS and d.size in (4, 5, 8, 12, 14):
            und = cv2.undistortPoints(pts, k, d, P=k)
        elif model in FISHEYE_MODELS and d.size == 4:
            und = cv2.fisheye.undistortPoints(pts, k, d, P=k)
        else:
            return None
    except cv2.error:
        return None
    shift = np.hypot(*(und[:, 0] - pts[:, 0]).T)
    return float(np.max(shift)) if np.isfinite(shift).all() else None


def distortion_warning(k, d, model, hw) -> Optional[str]:
    """The named warning for a camera_info that does not describe a rectified image (``distortion_px``), or None."""
    px = distortion_px(k, np.asarray(d[:16], np.float64), str(model), hw)
    if px is None:
        return (f"camera_info: distortion model {clip(model)} with {len(d)} coefficients is not one this node "
                "can judge (plumb_bob / rational_polynomial with 4-14 finite coefficients, equidistant with 4): "
                "taken as a rectified image (K only); subscribe it to a rectified image (image_proc's image_rect)")
    if px > DISTORTION_WARN_PX:
        return (f"camera_info: {clip(model)} distortion moves pixels up to {px:.1f} px at the image's edges, and this "
                "node lifts with K only (it does not rectify): subscribe it to a rectified image (image_proc's "
                "image_rect)")
    return None


class DistortionCheck:
    """``distortion_warning`` of a camera's newest camera_info, judged once per distortion (a camera publishes the
    same one with every frame). Call with the message's fields: ``(warning or None, whether it was judged anew)``."""

    def __init__(self):
        self._key, self.text = None, None

    def __call__(self, k, d, model, hw) -> Tuple[Optional[str], bool]:
        key = (clip(model), len(d), tuple(d[:16]), tuple(k), tuple(hw))
        if key == self._key:
            return self.text, False
        self._key, self.text = key, distortion_warning(k, d, model, hw)
        return self.text, True


def depth_range_valid(d: np.ndarray, min_range: float, max_range: float) -> np.ndarray:
    """Valid-pixel mask of metric depth: finite and within [min_range, max_range] (pixels outside are what a
    sensor reports as no return; they become invalid, like zeros)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(d) & (d >= min_range) & (d <= max_range)


def _bad(a, max_distance: float, points: bool) -> Optional[str]:
    a = np.asarray(a)
    if a.size == 0:
        return None
    if a.dtype.kind not in "fiu":
        return None
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return "non-finite"
    if points and max_distance > 0:
        p = np.asarray(a, np.float64).reshape(-1, 3)
        m = float(np.sqrt(np.einsum("ij,ij->i", p, p).max()))
        if m > max_distance:
            return f"a point {m:.3g} from the camera (limit {max_distance:g})"
    return None


def products_problem(products, max_distance: float) -> Problem:
    """Scan what the node would publish from ``products`` (pipeline.perception.Products): field control points and
    confidences, scale, tracks (control points, positions, forecasts, confidences, pixels), objects (centroid,
    velocity, trajectory, forecast). One pass over each array (numpy), no copies of the dense field."""
    pr = products
    checks = [("scale", np.float64(pr.scale), False),
              ("field.ctrl_pts", pr.field.ctrl_pts, True), ("field.ctrl_conf", pr.field.ctrl_conf, False),
              ("field.frame_times", pr.field.frame_times, False)]
    if pr.field.intrinsics is not None:
        checks.append(("field.K", pr.field.intrinsics, False))
    tr = pr.tracks
    if tr is not None:
        checks += [("tracks.ctrl", tr.ctrl, True), ("tracks.positions", tr.positions, True),
                   ("tracks.forecast", tr.forecast, True), ("tracks.uv", tr.uv, False),
                   ("tracks.confidence", tr.confidence, False), ("tracks.ctrl_conf", tr.ctrl_conf, False),
                   ("tracks.forecast_conf", tr.forecast_conf, False)]
    for o in pr.objects or ():
        checks += [("object.centroid", o.centroid, True), ("object.velocity", o.velocity, False),
                   ("object.trajectory", o.trajectory, True), ("object.forecast", o.forecast, True),
                   ("object.confidence", np.float64(o.confidence), False)]
    for name, arr, pts in checks:
        why = _bad(arr, max_distance, pts)
        if why:
            return "implausible_output", f"{name}: {why}"
    return None
