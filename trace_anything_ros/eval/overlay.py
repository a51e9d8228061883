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

"""Overlays of the perception products on camera frames (ROS-free, OpenCV drawing).

What is drawn on the newest frame of a window:
  * dynamic mask: each object id in its own colour (``id_color``), blended; a binary mask in one colour;
  * tracks: the trajectory of each query pixel over the window, coloured by time (dark blue = oldest frame ->
    yellow = newest, ``TIME_COLORMAP``); moving tracks thick, static ones thin and faint;
  * forecasts: dashed magenta continuation past the newest frame, fading with the forecast confidence;
  * objects: box in the object's colour with ``#id`` label, centroid path (time colours) and dashed forecast;
  * a legend and free text lines (stamp, rates, plan status).

3D positions (reference camera frame of the window) are projected with the intrinsics when known, else with a
pinhole fitted to the tracks themselves (newest positions <-> their query pixels); each curve is then anchored
at its query pixel (object: box centre), so a miscalibrated or up-to-scale field still shows its motion in
image space. Inputs come from ``pipeline.Products`` (``from_products``) or from decoded messages
(``from_messages``: TrajectoryArray, DynamicObjectArray, mask Image), with or without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

FORECAST_COLOR = (255, 0, 255)      # RGB magenta
STATIC_COLOR = (200, 200, 200)      # static points: light grey dot + stub
TEXT_COLOR = (255, 255, 255)
TIME_COLORMAP = "plasma-like"
_TIME_STOPS = np.array([[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]], np.float64)


def time_color(t: float) -> tuple:
    """RGB colour of normalised time t in [0, 1] (oldest -> newest: dark blue -> purple -> orange -> yellow)."""
    t = float(np.clip(t, 0.0, 1.0)) * (len(_TIME_STOPS) - 1)
    i = min(int(t), len(_TIME_STOPS) - 2)
    c = _TIME_STOPS[i] * (1 - (t - i)) + _TIME_STOPS[i + 1] * (t - i)
    return tuple(int(round(v)) for v in c)


def id_color(i: int) -> tuple:
    """A distinct, saturated RGB colour per object id (golden-ratio hue walk; id 0 = background = black)."""
    import colorsys

    if int(i) <= 0:
        return (0, 0, 0)
    h = (int(i) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return (int(r * 255), int(g * 255), int(b * 255))


@dataclass
class ObjectOverlay:
    id: int
    roi: tuple                              # (x, y, w, h) source pixels
    trajectory: np.ndarray                  # [N, 3]
    forecast: np.ndarray                    # [F, 3]
    forecast_conf: np.ndarray = field(default_factory=lambda: np.zeros(0))
    velocity: Optional[np.ndarray] = None
    pixel_count: int = 0


@dataclass
class OverlayData:
    """Everything drawn for one window, in source-image pixel coordinates."""

    uv: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))            # [M, 2] query pixels
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))  # [M, N, 3]
    forecast: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))   # [M, F, 3]
    forecast_conf: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [M, F]
    dynamic: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))                   # [M]
    object_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))             # [M]
    source_frame_is_newest: bool = True
    labels: Optional[np.ndarray] = None     # uint16 [h, w] object ids (any size; resized nearest)
    mask: Optional[np.ndarray] = None       # bool [h, w] when no labels
    objects: List[ObjectOverlay] = field(default_factory=list)
    K: Optional[np.ndarray] = None          # 3x3 intrinsics of the source image (None: fitted)


# -------------------------------------------------------------------------------------------- constructors
def from_products(pr, K_source: Optional[np.ndarray] = None) -> OverlayData:
    """OverlayData of ``pipeline.Products`` (K_source: intrinsics of the source image, optional)."""
    d = OverlayData(labels=pr.labels, mask=pr.mask, K=K_source)
    tr = pr.tracks
    if tr is not None and len(tr):
        d.uv, d.positions, d.forecast = tr.uv, tr.positions, tr.forecast
        d.forecast_conf, d.dynamic, d.object_id = tr.forecast_conf, tr.dynamic, tr.object_id
        d.source_frame_is_newest = tr.source_frame == len(pr.stamps_ns) - 1
    for o in pr.objects:
        d.objects.append(ObjectOverlay(int(o.id), tuple(o.roi), np.asarray(o.trajectory), np.asarray(o.forecast),
                                       np.asarray(o.forecast_conf), np.asarray(o.velocity), int(o.pixel_count)))
    return d


def _pts(points) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in points], np.float64).reshape(-1, 3)


def from_messages(tracks=None, objects=None, mask=None, K: Optional[np.ndarray] = None) -> OverlayData:
    """OverlayData of decoded messages (rclpy messages or mcap_ros2 / JSON decodings; duck-typed)."""
    d = OverlayData(K=K)
    if tracks is not None and len(tracks.trajectories):
        trs = tracks.trajectories
        n = len(tracks.frame_stamps)
        d.uv = np.array([[t.u, t.v] for t in trs], np.float32)
        d.positions = np.stack([_pts(t.positions).reshape(-1, 3) for t in trs]).astype(np.float32)
        f = min(len(t.forecast) for t in trs)
        d.forecast = np.stack([_pts(t.forecast)[:f] for t in trs]).reshape(len(trs), f, 3).astype(np.float32)
        d.forecast_conf = np.array([list(t.forecast_confidences)[:f] for t in trs], np.float32).reshape(len(trs), f)
        d.dynamic = np.array([bool(t.dynamic) for t in trs])
        d.object_id = np.array([int(t.object_id) for t in trs], np.int32)
        d.source_frame_is_newest = int(trs[0].source_frame) == n - 1
    if objects is not None:
        for o in objects.objects:
            r = o.roi
            d.objects.append(ObjectOverlay(
                int(o.id), (int(r.x_offset), int(r.y_offset), int(r.width), int(r.height)), _pts(o.trajectory),
                _pts(o.forecast), np.asarray(list(o.forecast_confidences), np.float32),
                np.array([o.velocity.x, o.velocity.y, o.velocity.z]), int(o.pixel_count)))
    if mask is not None:
        from trace_anything_ros.io.bag import image_array

        a = image_array(mask)
        if mask.encoding == "16UC1":
            d.labels = a.astype(np.uint16)
        else:
            d.mask = a != 0
    return d


# ---------------------------------------------------------------------------------------------- projection
def fit_pinhole(points: np.ndarray, uv: np.ndarray) -> Optional[np.ndarray]:
    """K (3x3) minimising the reprojection of ``points`` [M, 3] onto ``uv`` [M, 2] (independent x / y linear
    least squares on x/z, y/z); None when under-determined."""
    p = np.asarray(points, np.float64)
    q = np.asarray(uv, np.float64)
    ok = np.isfinite(p).all(1) & (p[:, 2] > 1e-6) & np.isfinite(q).all(1)
    if ok.sum() < 3:
        return None
    p, q = p[ok], q[ok]
    K = np.eye(3)
    for axis in (0, 1):
        a = np.stack([p[:, axis] / p[:, 2], np.ones(len(p))], 1)
        if np.ptp(a[:, 0]) < 1e-9:
            return None
        (f, c), *_ = np.linalg.lstsq(a, q[:, axis], rcond=None)
        K[axis, axis], K[axis, 2] = f, c
    if abs(K[0, 0]) < 1e-6 or abs(K[1, 1]) < 1e-6:
        return None
    return K


def fit_focal(points: np.ndarray, uv: np.ndarray, size) -> Optional[np.ndarray]:
    """Robust K for a source image of ``size`` (w, h): principal point at the image centre, one focal length =
    the median of |u - cx| / |x / z| and |v - cy| / |y / z| over the points (fields of untrained or up-to-scale
    models make a free least-squares fit ill-conditioned)."""
    w, h = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    p = np.asarray(points, np.float64)
    q = np.asarray(uv, np.float64)
    ok = np.isfinite(p).all(1) & (p[:, 2] > 1e-6) & np.isfinite(q).all(1)
    if ok.sum() < 3:
        return None
    p, q = p[ok], q[ok]
    ratios = []
    for axis, c in ((0, cx), (1, cy)):
        r = p[:, axis] / p[:, 2]
        m = np.abs(r) > 1e-3 * max(np.abs(r).max(), 1e-12)
        m &= np.abs(q[:, axis] - c) > 0.05 * (w if axis == 0 else h)
        ratios.append((q[m, axis] - c) / r[m])
    f = np.concatenate(ratios)
    f = f[np.isfinite(f) & (f > 0)]
    if f.size < 3:
        return None
    fm = float(np.median(f))
    return np.array([[fm, 0.0, cx], [0.0, fm, cy], [0.0, 0.0, 1.0]])


def project(K: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 2] pixels (NaN behind the camera)."""
    p = np.asarray(pts, np.float64)
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * p[..., 0] / z + K[0, 1] * p[..., 1] / z + K[0, 2]
        v = K[1, 1] * p[..., 1] / z + K[1, 2]
    out = np.stack([u, v], -1)
    out[z <= 1e-6] = np.nan
    return out


# -------------------------------------------------------------------------------------------------- drawing
def _dashed(img, p0, p1, color, thickness, dash=6):
    import cv2

    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = float(np.linalg.norm(p1 - p0))
    if not np.isfinite(length) or length < 1e-6:
        return
    n = max(1, int(length // dash))
    for k in range(0, n, 2):
        a = p0 + (p1 - p0) * (k / n)
        b = p0 + (p1 - p0) * (min(k + 1, n) / n)
        cv2.line(img, tuple(int(round(x)) for x in a), tuple(int(round(x)) for x in b), color, thickness,
                 cv2.LINE_AA)


def _polyline_time(img, pts, thickness):
    import cv2

    n = len(pts)
    for i in range(n - 1):
        a, b = pts[i], pts[i + 1]
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            continue
        cv2.line(img, (int(round(a[0])), int(round(a[1]))), (int(round(b[0])), int(round(b[1]))),
                 time_color((i + 1) / max(n - 1, 1)), thickness, cv2.LINE_AA)


def _clip_path(path: np.ndarray, w: int, h: int, margin: float = 2.0) -> np.ndarray:
    """Keep paths on a sane canvas (garbage fields can project to huge coordinates)."""
    lim = margin * max(w, h)
    p = path.copy()
    bad = ~np.isfinite(p).all(-1) | (np.abs(p) > lim).any(-1)
    p[bad] = np.nan
    return p


def _truncate_path(path: np.ndarray, max_len: float) -> np.ndarray:
    """The newest part of a polyline, at most ``max_len`` long (walking back from the last point)."""
    out = [path[-1]]
    left = float(max_len)
    for k in range(len(path) - 1, 0, -1):
        a, b = path[k], path[k - 1]
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            break
        seg = float(np.linalg.norm(b - a))
        if seg >= left:
            out.append(a + (b - a) * (left / max(seg, 1e-9)))
            break
        out.append(b)
        left -= seg
    return np.array(out[::-1])


def _text(img, xy, s, scale, color=TEXT_COLOR, thickness=1):
    import cv2

    x, y = int(xy[0]), int(xy[1])
    # shadow with the same thickness (OpenCV 5's fonts get wider with thickness: no thick outline)
    cv2.putText(img, s, (x + 1, y + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    cv2.putText(img, s, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def _panel(img, x, y, w, h, alpha=0.55):
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(img.shape[1], int(x + w)), min(img.shape[0], int(y + h))
    if x1 > x0 and y1 > y0:
        img[y0:y1, x0:x1] = (img[y0:y1, x0:x1] * (1 - alpha)).astype(np.uint8)


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """uint16 ids [h, w] -> RGB [h, w, 3] (0 = black)."""
    ids = np.unique(labels)
    lut = np.zeros((int(ids.max()) + 1 if ids.size else 1, 3), np.uint8)
    for i in ids:
        lut[int(i)] = id_color(int(i))
    return lut[labels]


def render(rgb: np.ndarray, data: Optional[OverlayData] = None, text_lines: Sequence[str] = (),
           min_width: int = 640, legend: bool = True, mask_alpha: float = 0.45, static_len: float = 12.0
           ) -> np.ndarray:
    """The overlay image (RGB uint8), upscaled so that it is at least ``min_width`` pixels wide.

    Moving tracks (``dynamic``) are drawn in full with their forecast; static ones as a dot with the newest
    ``static_len`` source pixels of their path (0: dots only)."""
    import cv2

    src_h, src_w = rgb.shape[:2]
    s = max(1.0, float(min_width) / src_w)
    out_w, out_h = int(round(src_w * s)), int(round(src_h * s))
    img = np.ascontiguousarray(rgb[:, :, :3], np.uint8)
    if s != 1.0:
        img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    img = img.copy()
    d = data or OverlayData()
    thick = max(1, int(round(s)))

    # ---- mask, coloured by object id
    if d.labels is not None and d.labels.size:
        lab = cv2.resize(np.ascontiguousarray(d.labels, np.uint16), (out_w, out_h), interpolation=cv2.INTER_NEAREST)
        on = lab > 0
        if on.any():
            col = colorize_labels(lab)
            img[on] = (img[on] * (1 - mask_alpha) + col[on] * mask_alpha).astype(np.uint8)
    elif d.mask is not None and d.mask.size:
        m = cv2.resize(np.asarray(d.mask, np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST) > 0
        if m.any():
            img[m] = (img[m] * (1 - mask_alpha) + np.array([0, 255, 255]) * mask_alpha).astype(np.uint8)

    # ---- projection
    K = None
    if d.K is not None:
        K = np.asarray(d.K, np.float64).reshape(3, 3)
    elif len(d.uv) and d.positions.size and d.source_frame_is_newest:
        K = fit_focal(d.positions[:, -1], d.uv, (src_w, src_h))

    # ---- tracks (time colours) + forecasts (dashed magenta)
    if K is not None and len(d.uv) and d.positions.size:
        traj_px = project(K, d.positions)                                        # [M, N, 2]
        fc_px = project(K, d.forecast) if d.forecast.size else np.zeros((len(d.uv), 0, 2))
        anchor = traj_px[:, -1]                                                  # curve at the newest frame
        shift = (d.uv - anchor)                                                  # anchor at the query pixel
        order = np.argsort(d.dynamic.astype(int))                                # static first, moving on top
        for i in order:
            dyn = bool(d.dynamic[i]) if len(d.dynamic) else False
            path = _clip_path((traj_px[i] + shift[i]) * s, out_w, out_h)
            if dyn:
                _polyline_time(img, path, thick + 1)
            elif static_len > 0:  # static points: a short faint stub (their apparent motion is model noise)
                stub = _truncate_path(path, static_len * s)
                for k in range(len(stub) - 1):
                    if np.isfinite(stub[k]).all() and np.isfinite(stub[k + 1]).all():
                        cv2.line(img, tuple(int(round(x)) for x in stub[k]), tuple(int(round(x)) for x in stub[k + 1]),
                                 STATIC_COLOR, thick, cv2.LINE_AA)
            if fc_px.shape[1] and dyn:
                fpath = _clip_path(np.concatenate([path[-1:], (fc_px[i] + shift[i]) * s]), out_w, out_h)
                for k in range(len(fpath) - 1):
                    if np.isfinite(fpath[k]).all() and np.isfinite(fpath[k + 1]).all():
                        _dashed(img, fpath[k], fpath[k + 1], FORECAST_COLOR, thick + 1, dash=max(4, int(5 * s)))
                if np.isfinite(fpath[-1]).all():
                    cv2.circle(img, tuple(int(round(x)) for x in fpath[-1]), thick + 1, FORECAST_COLOR, -1,
                               cv2.LINE_AA)
            c = d.uv[i] * s
            if np.isfinite(c).all():
                cv2.circle(img, (int(round(c[0])), int(round(c[1]))), thick + (1 if dyn else 0),
                           time_color(1.0) if dyn else STATIC_COLOR, -1, cv2.LINE_AA)

    # ---- objects: boxes with ids, centroid path and forecast
    for o in d.objects:
        x, y, w, h = (float(v) * s for v in o.roi)
        col = id_color(o.id)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), col, thick + 1, cv2.LINE_AA)
        label = f"#{o.id}"
        if o.velocity is not None and np.isfinite(o.velocity).all():
            label += f" v={float(np.linalg.norm(o.velocity)):.2g}"
        fs = 0.4 * max(1.0, out_w / 800)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
        ty = int(y) - 4 if y - th - 6 > 0 else int(y + h) + th + 4
        cv2.rectangle(img, (int(x), ty - th - 3), (int(x) + tw + 4, ty + 3), col, -1)
        cv2.putText(img, label, (int(x) + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), 1, cv2.LINE_AA)
        if K is not None and len(o.trajectory):
            tp = project(K, o.trajectory)
            ctr = np.array([x + w / 2, y + h / 2]) / s
            shift = ctr - tp[-1]
            path = _clip_path((tp + shift) * s, out_w, out_h)
            _polyline_time(img, path, thick + 2)
            if len(o.forecast):
                fp = _clip_path(np.concatenate([path[-1:], (project(K, o.forecast) + shift) * s]), out_w, out_h)
                for k in range(len(fp) - 1):
                    if np.isfinite(fp[k]).all() and np.isfinite(fp[k + 1]).all():
                        _dashed(img, fp[k], fp[k + 1], FORECAST_COLOR, thick + 2, dash=max(5, int(6 * s)))

    # ---- legend + text, each on a translucent dark panel
    k = max(1.0, out_w / 800)
    fs = 0.45 * k
    line_h = int(18 * k)
    if text_lines:
        tw = max(cv2.getTextSize(str(t), cv2.FONT_HERSHEY_SIMPLEX, fs, 1)[0][0] for t in text_lines)
        _panel(img, 0, 0, tw + int(24 * k), line_h * len(text_lines) + int(8 * k))
        y = line_h
        for t in text_lines:
            _text(img, (8, y), str(t), fs)
            y += line_h
    if legend:  # bottom-right, out of the way of the text lines
        bar_w = int(50 * k)
        entries = ("moving track old -> new", "forecast", "static point", "object #id + mask")
        tw = max(cv2.getTextSize(e, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)[0][0] for e in entries)
        pw = bar_w + tw + int(24 * k)
        ph = line_h * len(entries) + int(8 * k)
        lx = out_w - pw + int(8 * k)
        _panel(img, out_w - pw, out_h - ph, pw, ph)
        ly = out_h - ph + line_h
        for kk in range(bar_w):
            cv2.line(img, (lx + kk, ly - int(9 * k)), (lx + kk, ly - int(2 * k)), time_color(kk / max(bar_w - 1, 1)),
                     1)
        _text(img, (lx + bar_w + 6, ly), entries[0], fs)
        ly += line_h
        _dashed(img, (lx, ly - int(5 * k)), (lx + bar_w, ly - int(5 * k)), FORECAST_COLOR, max(2, thick), dash=6)
        _text(img, (lx + bar_w + 6, ly), entries[1], fs)
        ly += line_h
        cv2.circle(img, (lx + bar_w - int(6 * k), ly - int(5 * k)), thick, STATIC_COLOR, -1, cv2.LINE_AA)
        cv2.line(img, (lx + bar_w - int(6 * k), ly - int(5 * k)), (lx + bar_w - int(18 * k), ly - int(9 * k)),
                 STATIC_COLOR, thick, cv2.LINE_AA)
        _text(img, (lx + bar_w + 6, ly), entries[2], fs)
        ly += line_h
        cv2.rectangle(img, (lx, ly - int(11 * k)), (lx + bar_w, ly - 1), id_color(1), 2)
        _text(img, (lx + bar_w + 6, ly), entries[3], fs)
    return img


class VideoOut:
    """mp4 writer (cv2.VideoWriter, mp4v) taking RGB frames of a fixed size (resized when they differ)."""

    def __init__(self, path: str, fps: float):
        self.path, self.fps = path, float(fps)
        self._w = None
        self.size = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if self._w is None:
            h, w = rgb.shape[:2]
            self.size = (w - w % 2, h - h % 2)
            self._w = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), max(self.fps, 1.0), self.size)
            if not self._w.isOpened():
                raise IOError(f"cannot open video writer for {self.path}")
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self._w.write(np.ascontiguousarray(rgb[:, :, ::-1]))
        self.frames += 1

    def close(self) -> None:
        if self._w is not None:
            self._w.release()
            self._w = None


def save_png(path: str, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1])):
        raise IOError(f"cannot write {path}")
