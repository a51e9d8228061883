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

"""Semi-real test clips: a real photograph as the scene, a large real-textured occluder (a hand-like silhouette cut
from another real photograph) sweeping close and fast across it, with what a cheap camera adds -- sensor noise,
motion blur, brightness flicker, JPEG compression -- and ground-truth masks of the occluder.

No "hand in front of a webcam" recording ships with this repository; these clips stand in for one (real textures,
real image statistics, known truth), next to the real videos of opencv-doc (vtest.avi, Megamind.avi).

Kinds (``KINDS``):
  * ``sweep``: static camera, the occluder enters on one side, crosses the frame in ~1 s while approaching
    (growing) and turning, leaves on the other side; two passes.
  * ``quiet``: the same scene, noise, flicker and compression, nothing moving (masks must be empty).
  * ``shake``: ``sweep`` with a hand-held camera: the whole view jitters (a few pixels and a fraction of a degree
    per frame, random walk).
  * ``shake_quiet``: hand-held camera, nothing moving.
  * ``wave``: static camera, the occluder enters from the right (0.6 s), waves in place (``wave_hz``, side to side
    by 12 % of the width while turning +-15 deg, for ``wave_s``: it stops at every turn) and leaves the same way
    (``wave_s`` + 2 s in all: 75 frames at 15 fps with the defaults).
  * ``raise``: static camera, an arm in view from the first frame: it lies along the bottom of the frame, still,
    for ``RAISE_REST_S`` (the background is learnt with it), turns up about its wrist at the bottom edge in
    ``RAISE_S`` and waves there (+-20 deg, ``wave_hz``) to the end -- a person signing, whose arms hung at rest when
    the recording began. The masks are empty while it rests: a still arm is not a mover.

The occluder is textured with a photograph (``occluder='photo'``) or skin-coloured and nearly uniform
(``occluder='skin'``: a flat colour, shading from the top and a faint blurred texture, as a real hand is: little for
optical flow to follow inside it, and large enough to shift the frame's overall brightness statistics).

Photographs come from opencv-doc's sample data; ``TUNE_SCENES`` / ``TUNE_TEXTURES`` are those the estimators were
tuned on, ``HOLDOUT_SCENES`` / ``HOLDOUT_TEXTURES`` the ones kept for testing (``split='holdout'``).

    python -m trace_anything_ros.eval.clips OUT_DIR [--kind sweep] [--seed 0] [--split holdout]

writes ``<kind>_<seed>.avi`` (MJPG) and ``<kind>_<seed>_masks.npz`` (``masks [T, H, W]`` bool, ``stamps_ns``).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

KINDS = ("sweep", "quiet", "shake", "shake_quiet", "wave", "raise")
RAISE_REST_S = 1.2   # raise: the arm rests this long ...
RAISE_S = 0.8        # ... and turns up in this time
TUNE_SCENES = ("building.jpg", "home.jpg")
TUNE_TEXTURES = ("baboon.jpg",)
HOLDOUT_SCENES = ("fruits.jpg", "aero1.jpg", "left01.jpg", "stuff.jpg")
HOLDOUT_TEXTURES = ("messi5.jpg", "orange.jpg", "squirrel_cls.jpg")
SHADOW_OFFSET = (0.12, 0.15)       # shadow: cast this far (fractions of the occluder's size) right and down ...
SHADOW_BLUR = 0.05                 # ... this soft (Gaussian sigma, fraction of its size) ...
SHADOW_TINT = (1.0, 0.97, 0.9)     # ... taking less blue than red (the ambient light filling it is bluer)


def data_dir() -> Optional[str]:
    """opencv-doc's sample data directory (next to vtest.avi), or None."""
    from trace_anything_ros.io.video import find_vtest
    v = find_vtest()
    return os.path.dirname(v) if v else None


@dataclass
class Clip:
    frames: np.ndarray     # [T, H, W, 3] uint8 RGB, as a camera would deliver them (after JPEG)
    masks: np.ndarray      # [T, H, W] bool: the occluder (>= half of the pixel covered during the exposure)
    fps: float
    kind: str
    scene: str
    texture: str

    def write(self, out_dir: str, name: str) -> Tuple[str, str]:
        """``(video path, masks path)``: an MJPG .avi (what ``process`` reads) and the ground truth .npz."""
        import cv2
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{name}.avi")
        h, w = self.frames.shape[1:3]
        vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), self.fps, (w, h))
        if not vw.isOpened():
            raise RuntimeError(f"cannot write {path} (OpenCV MJPG writer)")
        for f in self.frames:
            vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        vw.release()
        mpath = os.path.join(out_dir, f"{name}_masks.npz")
        # the stamps io.video.read_video gives these frames (what `process` publishes its masks with)
        stamps = 1_000_000_000 + np.arange(len(self.frames), dtype=np.int64) * int(round(1e9 / self.fps))
        np.savez_compressed(mpath, masks=self.masks, stamps_ns=stamps, fps=self.fps)
        return path, mpath


def _read(name: str, root: str) -> np.ndarray:
    import cv2
    img = cv2.imread(os.path.join(root, name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{name} not in {root}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _cover(img: np.ndarray, h: int, w: int, margin: int) -> np.ndarray:
    """``img`` resized to cover (h + 2 margin) x (w + 2 margin), centre-cropped."""
    import cv2
    H, W = h + 2 * margin, w + 2 * margin
    s = max(H / img.shape[0], W / img.shape[1])
    r = cv2.resize(img, (int(np.ceil(img.shape[1] * s)), int(np.ceil(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
    y0, x0 = (r.shape[0] - H) // 2, (r.shape[1] - W) // 2
    return r[y0:y0 + H, x0:x0 + W].astype(np.float32)


def plain_wall(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A painted wall, [h, w, 3] float32: one light colour, a broad lighting gradient, plaster grain of about one
    grey level and one poster (a flat dark rectangle, ~5-10 % of the view) -- little for optical flow to hold on
    to outside the poster's edges."""
    import cv2
    colour = rng.uniform(150, 215) * rng.uniform(0.93, 1.07, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.0 + rng.uniform(-0.15, 0.15) * (xx / w - 0.5) + rng.uniform(-0.15, 0.15) * (yy / h - 0.5)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0) * 2.0
    img = colour[None, None].astype(np.float32) * light[..., None] + grain[..., None]
    ph, pw = int(h * rng.uniform(0.25, 0.35)), int(w * rng.uniform(0.2, 0.3))
    y0, x0 = int(rng.uniform(0.1, 0.9) * (h - ph)), int(rng.uniform(0.1, 0.9) * (w - pw))
    img[y0:y0 + ph, x0:x0 + pw] = rng.uniform(60, 150, size=3) * light[y0:y0 + ph, x0:x0 + pw, None]
    return np.clip(img, 0, 255).astype(np.float32)


def hand_silhouette(size: int, rng: np.random.Generator) -> np.ndarray:
    """A hand-like mask ``[size, size]`` float32 in [0, 1]: a palm and four fingers and a thumb (capsules), anti-
    aliased, with random proportions."""
    import cv2
    ss = 4  # supersampling for smooth edges
    S = size * ss
    m = np.zeros((S, S), np.uint8)
    cx, cy = S // 2, int(S * 0.62)
    pw, ph = int(S * rng.uniform(0.20, 0.24)), int(S * rng.uniform(0.22, 0.26))
    cv2.ellipse(m, (cx, cy), (pw, ph), 0, 0, 360, 255, -1)
    fw = max(2, int(pw * 0.36))
    for k, ang in enumerate(np.linspace(-0.32, 0.32, 4)):
        length = S * rng.uniform(0.26, 0.33) * (0.85 if k in (0, 3) else 1.0)
        bx = int(cx + (k - 1.5) * pw * 0.5)
        by = cy - int(ph * 0.8)
        tx, ty = int(bx + np.sin(ang) * length), int(by - np.cos(ang) * length)
        cv2.line(m, (bx, by), (tx, ty), 255, fw)
        cv2.circle(m, (tx, ty), fw // 2, 255, -1)
    tx, ty = int(cx - pw * 1.5), int(cy - ph * 0.2)                                  # thumb
    cv2.line(m, (int(cx - pw * 0.6), int(cy + ph * 0.2)), (tx, ty), 255, int(fw * 1.2))
    cv2.rectangle(m, (cx - int(pw * 0.7), cy), (cx + int(pw * 0.7), S), 255, -1)     # wrist to the frame edge
    return cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _affine(cx, cy, angle_deg, scale, tx, ty):
    import cv2
    M = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle_deg), float(scale))
    M[:, 2] += (tx, ty)
    return M


WAVE_START_S = 0.8   # wave: nothing in view before this
WAVE_ENTER_S = 0.6   # ... the occluder's way in (and out)


def _wave_x(t: float, w: int, hs: int, wave_s: float, wave_hz: float) -> Optional[float]:
    """The waving occluder's centre x at time ``t`` (s), or None while it is out of view."""
    u = t - WAVE_START_S
    out, centre = w + 0.6 * hs, 0.55 * w
    if u < 0 or u > 2 * WAVE_ENTER_S + wave_s:
        return None
    if u < WAVE_ENTER_S:
        return out - (out - centre) * u / WAVE_ENTER_S
    if u < WAVE_ENTER_S + wave_s:
        return centre + 0.12 * w * np.sin(2 * np.pi * wave_hz * (u - WAVE_ENTER_S))
    return centre + (out - centre) * (u - WAVE_ENTER_S - wave_s) / WAVE_ENTER_S


def make_clip(kind: str = "sweep", seed: int = 0, size: Tuple[int, int] = (240, 320), num_frames: int = 60,
              fps: float = 15.0, split: str = "tune", noise_sigma: float = 3.0, jpeg_quality: int = 70,
              flicker: float = 0.06, blur_steps: int = 5, exposure: float = 0.4, shake_px: float = 2.0,
              sweep_s: float = 1.0, occluder: str = "photo", wave_s: float = 3.0, wave_hz: float = 1.0,
              brightness: float = 1.0, scene: str = "photo", shadow: float = 0.0,
              root: Optional[str] = None) -> Clip:
    """One clip (see the module docstring). ``size`` (H, W); ``split`` 'tune' | 'holdout' picks the photographs;
    ``exposure``: the fraction of the frame period the shutter is open (motion blur over ``blur_steps`` renders);
    ``occluder``: 'photo' | 'skin' (see the module docstring); ``brightness``: the light reaching the sensor
    relative to a normal exposure (a dim room at a fixed exposure: < 1; the sensor noise stays as it is);
    ``scene``: 'photo' (the split's photographs) | 'wall' (``plain_wall``: a painted wall with one poster);
    ``shadow``: the fraction of the light the occluder's shadow takes from the scene (0: none; see
    ``SHADOW_OFFSET``). The masks are the occluder's only: a shadow is not a mover."""
    import cv2
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if split not in ("tune", "holdout"):
        raise ValueError("split must be 'tune' or 'holdout'")
    if occluder not in ("photo", "skin"):
        raise ValueError(f"occluder must be 'photo' or 'skin', got {occluder!r}")
    if scene not in ("photo", "wall"):
        raise ValueError(f"scene must be 'photo' or 'wall', got {scene!r}")
    root = root or data_dir()
    if root is None:
        raise FileNotFoundError("opencv-doc sample data not found (make bootstrap extracts it)")
    rng = np.random.default_rng(seed)
    scenes, textures = (TUNE_SCENES, TUNE_TEXTURES) if split == "tune" else (HOLDOUT_SCENES, HOLDOUT_TEXTURES)
    scene_name = scenes[seed % len(scenes)]
    tex_name = textures[(seed // len(scenes)) % len(textures)]
    h, w = size
    margin = int(np.ceil(4 * shake_px)) + 8
    if scene == "wall":   # its own random stream: the photo clips' draws stay as they were
        scene_name = "wall"
        scene = plain_wall(h + 2 * margin, w + 2 * margin, np.random.default_rng([seed, 1]))
    else:
        scene = _cover(_read(scene_name, root), h, w, margin)
    moving = kind in ("sweep", "shake", "wave", "raise")
    shaky = kind in ("shake", "shake_quiet")
    hs = int(h * rng.uniform(0.75, 0.95))          # the occluder is large: most of the frame's height
    sil = hand_silhouette(hs, rng)
    tex = _cover(_read(tex_name, root), hs, hs, 0)
    if occluder == "skin":   # a flat skin tone lit from the top, with a faint trace of the photograph's texture
        grey = cv2.GaussianBlur(tex.mean(-1), (0, 0), 4)
        grey = (grey - grey.mean()) / (grey.std() + 1e-6)
        yy, xx = np.mgrid[0:hs, 0:hs].astype(np.float32) / hs
        shade = (0.8 + 0.35 * (1 - yy) * (0.6 + 0.4 * xx)) * (1 + 0.045 * grey)
        skin = np.array([rng.uniform(170, 225), rng.uniform(120, 165), rng.uniform(95, 135)], np.float32)
        tex = skin[None, None] * shade[..., None]
        tex_name = "skin"
    else:
        tex *= rng.uniform(0.8, 1.2, size=3).astype(np.float32)  # a colour cast: not the photograph's exact colours
    # camera: random walk of a small translation + rotation (shake), or still
    cam = np.zeros((num_frames * blur_steps, 3))
    if shaky:
        steps = rng.normal(0, 1, size=cam.shape) * np.array([shake_px, shake_px, 0.25]) / np.sqrt(blur_steps)
        cam = np.cumsum(steps, 0)
        cam -= np.linspace(0, 1, len(cam))[:, None] * cam[-1]          # stays around the start
        cam[:, :2] = np.clip(cam[:, :2], -3 * shake_px, 3 * shake_px)
    frames, masks = [], []
    sweep_frames = max(2, int(round(sweep_s * fps)))
    # two passes: left -> right, then right -> left, with pauses (nothing in view) before, between and after
    pause = max(3, (num_frames - 2 * sweep_frames) // 3)
    for t in range(num_frames):
        acc = np.zeros((h, w, 3), np.float32)
        cover = np.zeros((h, w), np.float32)
        for s in range(blur_steps):               # motion blur: the exposure integrates sub-frame positions
            k = t * blur_steps + s
            tt = t + exposure * s / blur_steps   # the shutter is open for `exposure` of the frame period
            dx, dy, da = cam[k]
            M = _affine(w / 2 + margin, h / 2 + margin, da, 1.0, dx - margin, dy - margin)
            img = cv2.warpAffine(scene, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            a = np.zeros((h, w), np.float32)
            Mo = None
            if kind == "raise":   # about the wrist: the silhouette's bottom centre, just below the frame
                u = tt / fps - RAISE_REST_S
                ang = 80.0 if u < 0 else (80.0 * (1 - u / RAISE_S) if u < RAISE_S else
                                          -20.0 * np.sin(2 * np.pi * wave_hz * (u - RAISE_S)))
                Mo = _affine(hs / 2, hs, ang, 1.0, 0.65 * w - hs / 2, 1.04 * h - hs)
            elif kind == "wave":
                x = _wave_x(tt / fps, w, hs, wave_s, wave_hz)
                if x is not None:
                    ang = 15 * np.sin(2 * np.pi * wave_hz * max(0.0, tt / fps - WAVE_START_S - WAVE_ENTER_S))
                    Mo = _affine(hs / 2, hs / 2, ang, 1.0, x - hs / 2, h * 0.62 - hs / 2)
            elif moving:
                phase = None
                for p, start in enumerate((pause, 2 * pause + sweep_frames)):
                    if start <= tt < start + sweep_frames:
                        phase = (p, (tt - start) / sweep_frames)
                if phase is not None:
                    p, u = phase
                    x = (-0.6 * hs + u * (w + 1.2 * hs)) if p == 0 else (w + 0.6 * hs - u * (w + 1.2 * hs))
                    y = h * 0.6 + 0.1 * h * np.sin(2 * np.pi * u)
                    ang = 25 * (u - 0.5) * (1 if p == 0 else -1)
                    sc = 0.85 + 0.3 * u                                   # approaching the lens
                    Mo = _affine(hs / 2, hs / 2, ang, sc, x - hs / 2, y - hs / 2)
            if Mo is not None:
                a = cv2.warpAffine(sil, Mo, (w, h), flags=cv2.INTER_LINEAR)
                if shadow > 0:   # soft, cast down and to the side, lit by bluish ambient light where it falls
                    Ms = Mo.copy()
                    Ms[:, 2] += np.array(SHADOW_OFFSET) * hs
                    sa = cv2.GaussianBlur(cv2.warpAffine(sil, Ms, (w, h), flags=cv2.INTER_LINEAR), (0, 0),
                                          SHADOW_BLUR * hs)
                    img = img * (1 - shadow * sa[..., None] * np.array(SHADOW_TINT, np.float32))
                ot = cv2.warpAffine(tex, Mo, (w, h), flags=cv2.INTER_LINEAR)
                img = img * (1 - a[..., None]) + ot * a[..., None]
            acc += img
            cover += a
        img = acc / blur_steps
        gain = 1.0 + flicker * (0.6 * np.sin(2 * np.pi * t / 7.0) + 0.4 * rng.uniform(-1, 1))
        img = img * (gain * brightness) + rng.normal(0, noise_sigma, size=img.shape)
        img = np.clip(img, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        frames.append(img)
        resting = kind == "raise" and t / fps < RAISE_REST_S
        masks.append((cover / blur_steps >= 0.5) & (not resting))
    return Clip(np.stack(frames), np.stack(masks), fps, kind, scene_name, tex_name)


def score_masks(masks: dict, truth: np.ndarray, stamps_ns: np.ndarray, min_cover: float = 0.05) -> dict:
    """Per-pixel agreement of ``masks`` (``{stamp_ns: [H, W]}`` at the clip's size) with the ground truth: windows
    whose truth covers >= ``min_cover`` (precision, recall, IoU means) and the fraction of moving pixels published in
    windows without a mover (``empty_fraction``: should be 0)."""
    idx = {int(s): i for i, s in enumerate(np.asarray(stamps_ns).tolist())}
    prec, rec, iou, spill = [], [], [], []
    for s, m in masks.items():
        if int(s) not in idx:
            continue
        g = truth[idx[int(s)]]
        m = np.asarray(m) > 0
        if g.mean() >= min_cover:
            inter = float((m & g).sum())
            rec.append(inter / float(g.sum()))
            prec.append(inter / float(m.sum()) if m.any() else 0.0)
            iou.append(inter / float((m | g).sum()))
        elif not g.any():
            spill.append(float(m.mean()))
    nan = float("nan")
    return {"mover_windows": len(rec), "precision": float(np.mean(prec)) if prec else nan,
            "recall": float(np.mean(rec)) if rec else nan, "iou": float(np.mean(iou)) if iou else nan,
            "empty_windows": len(spill), "empty_fraction": float(np.mean(spill)) if spill else nan,
            "empty_windows_with_mask": int(sum(x > 0 for x in spill))}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trace_anything_ros.eval.clips", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--kind", choices=KINDS, action="append", default=[], help="repeatable (default: all)")
    ap.add_argument("--seed", type=int, action="append", default=[], help="repeatable (default: 0)")
    ap.add_argument("--split", choices=("tune", "holdout"), default="holdout")
    ap.add_argument("--occluder", choices=("photo", "skin"), default="photo")
    ap.add_argument("--scene", choices=("photo", "wall"), default="photo", help="wall: a painted wall with one poster")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--brightness", type=float, default=1.0, help="light relative to a normal exposure (dim: < 1)")
    ap.add_argument("--shadow", type=float, default=0.0, help="fraction of the light the occluder's shadow takes")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    a = ap.parse_args(argv)
    for kind in a.kind or KINDS:
        for seed in a.seed or [0]:
            clip = make_clip(kind, seed, (a.height, a.width), a.frames, split=a.split, occluder=a.occluder,
                             brightness=a.brightness, scene=a.scene, shadow=a.shadow)
            v, m = clip.write(a.out_dir, f"{kind}_{seed}")
            print(f"{v} ({clip.scene} + {clip.texture}; truth {m})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
