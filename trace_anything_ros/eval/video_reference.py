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

"""Real video without ground truth: agreement of `process`'s dynamic masks with an independent reference, OpenCV's
MOG2 background subtraction, on a static-camera video (e.g. vtest.avi, people walking).

`trace-anything-ros eval-video OUT_DIR VIDEO` (OUT_DIR: what `trace-anything-ros process VIDEO --out OUT_DIR` wrote).
Background subtraction is a good moving-pixel reference only for a static camera; it is learnt over the first
``warmup_s`` seconds, which are not scored. Per window (its newest frame):

- ``precision``: fraction of our moving pixels within ``near_px`` of the reference foreground (mean over windows
  with a mask);
- ``recall``: fraction of reference blobs (connected foreground of at least ``min_blob_px`` pixels: a person at
  vtest's distance is ~1000) that our mask touches (within ``touch_px``);
- ``windows_with_mask``: windows where we published any moving pixel.

- ``false_positive_px`` (our pixels beyond ``near_px``), ``false_positive_attached`` (the share of them on blobs that
  also reach the reference: a mover's blob reaching past it), ``pixel_weighted_precision``; ``--per-window FILE``
  writes the rows (frame index, false-positive pixels, ...) to see where they are.

``reference``: ``'mog2-50'`` (the default: MOG2 with a 50-frame history and variance threshold 25) or
``'mog2-default'`` (OpenCV's defaults: a 500-frame history, threshold 16). Both with shadows off and a 5 x 5 opening.
The short history forgets a hand that lingers for a few seconds, and where leaves move in the wind its widened
per-pixel models lose a hand in front of them (tree.avi); OpenCV's defaults keep both, and are noisier.

Measured on vtest.avi, all 795 frames, `process` defaults (regime rgb_static, the geometric flow field): see README,
"Estimators by input regime".
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from trace_anything_ros.ros.graph import PERCEPTION_NS as NODE  # rclpy-free: the one home of topic names

REFERENCES = {"mog2-50": {"history": 50, "varThreshold": 25}, "mog2-default": {"history": 500, "varThreshold": 16}}


def agreement(out_dir: str, video: str, warmup_s: float = 2.0, near_px: int = 31, touch_px: int = 15,
              min_blob_px: int = 300, min_cover: float = 0.05, per_window: bool = False,
              reference: str = "mog2-50") -> dict:
    from trace_anything_ros.io import bag

    name = os.path.splitext(os.path.basename(os.path.normpath(video)))[0]
    masks = {bag.stamp_ns(r.msg.header.stamp): bag.image_array(r.msg)
             for r in bag.iter_messages(os.path.join(out_dir, f"{name}.mcap"), [f"{NODE}/dynamic_mask"])}
    if not masks:
        raise ValueError(f"no {NODE}/dynamic_mask messages in {out_dir}/{name}.mcap")
    return agreement_masks(masks, video, warmup_s, near_px, touch_px, min_blob_px, min_cover, per_window, reference)


def agreement_masks(masks: dict, video: str, warmup_s: float = 2.0, near_px: int = 31, touch_px: int = 15,
                    min_blob_px: int = 300, min_cover: float = 0.05, per_window: bool = False,
                    reference: str = "mog2-50") -> dict:
    """``agreement`` for masks already in memory: ``{stamp_ns: mask [H, W] at the video's resolution}``."""
    import cv2

    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {sorted(REFERENCES)}, got {reference!r}")

    from trace_anything_ros.io.video import read_video

    last = max(masks)
    mog = cv2.createBackgroundSubtractorMOG2(detectShadows=False, **REFERENCES[reference])
    k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    prec, hits, windows = [], [], 0
    px_prec, px_rec, rows = [], [], []
    fp_total = [0, 0, 0]   # false-positive pixels, of them on blobs that reach the reference, all our pixels
    t0 = None
    for frame_index, f in enumerate(read_video(video)):
        if f.stamp_ns > last:
            break
        t0 = f.stamp_ns if t0 is None else t0
        fg = mog.apply(cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR)) > 0
        if f.stamp_ns not in masks or (f.stamp_ns - t0) * 1e-9 < warmup_s:
            continue
        fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, k_open)
        ours = masks[f.stamp_ns] > 0
        if ours.shape != fg.shape:
            raise ValueError(f"mask {ours.shape} vs video frame {fg.shape}")
        windows += 1
        fp_px, fp_attached = 0, 0
        if ours.any():
            near = cv2.dilate(fg, np.ones((near_px, near_px), np.uint8)) > 0
            prec.append(float((ours & near).sum() / ours.sum()))
            far = ours & ~near
            fp_px = int(far.sum())
            if fp_px:   # false positives on a blob that also reaches the reference (a mover's blob too large)
                n_c, lab_c = cv2.connectedComponents(ours.astype(np.uint8))
                attached = np.zeros(n_c, bool)
                attached[np.unique(lab_c[ours & near])] = True
                fp_attached = int(attached[lab_c[far]].sum())
            fp_total[0] += fp_px
            fp_total[1] += fp_attached
            fp_total[2] += int(ours.sum())
        cnt, lab, st, _ = cv2.connectedComponentsWithStats(fg)
        touch = cv2.dilate(ours.astype(np.uint8), np.ones((touch_px, touch_px), np.uint8)) > 0
        w_hits = []
        for i in range(1, cnt):
            if st[i, cv2.CC_STAT_AREA] >= min_blob_px:
                w_hits.append(bool(touch[lab == i].any()))
        hits.extend(w_hits)
        fgb = fg > 0
        cover = float(fgb.mean())
        row = {"stamp_ns": int(f.stamp_ns), "frame": frame_index, "fp_px": fp_px, "fp_px_attached": fp_attached,
               "fg_cover": round(cover, 4), "ours_cover": round(float(ours.mean()), 4),
               "precision_near": round(prec[-1], 4) if ours.any() else None, "blobs_hit": sum(w_hits),
               "blobs": len(w_hits)}
        if cover >= min_cover:  # a large mover: per-pixel agreement
            inter = float((ours & fgb).sum())
            px_rec.append(inter / max(float(fgb.sum()), 1.0))
            px_prec.append(inter / float(ours.sum()) if ours.any() else 0.0)
            row.update(pixel_recall=round(px_rec[-1], 4), pixel_precision=round(px_prec[-1], 4))
        rows.append(row)
    out = {"windows": windows, "windows_with_mask": len(prec),
           "precision": float(np.mean(prec)) if prec else float("nan"),
           "recall": float(np.mean(hits)) if hits else float("nan"), "reference_blobs": len(hits),
           # windows where the reference foreground covers >= min_cover of the frame (a large, close mover):
           # per-pixel agreement (precision of a window without our mask counts 0)
           "large_mover_windows": len(px_rec),
           "pixel_precision": float(np.mean(px_prec)) if px_prec else float("nan"),
           "pixel_recall": float(np.mean(px_rec)) if px_rec else float("nan"),
           # where the precision goes: our pixels farther than near_px from the reference foreground, and the share
           # of them on blobs that also reach it (a mover's blob reaching past it: trailing ghosts, merged movers)
           "false_positive_px": fp_total[0],
           "false_positive_attached": round(fp_total[1] / fp_total[0], 4) if fp_total[0] else float("nan"),
           "pixel_weighted_precision": round(1.0 - fp_total[0] / fp_total[2], 4) if fp_total[2] else float("nan")}
    if per_window:
        out["per_window"] = rows
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", help="output directory of `trace-anything-ros process VIDEO --out OUT_DIR`")
    p.add_argument("video", help="the same (static-camera) video")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds the background model learns, not scored")
    p.add_argument("--per-window", default="", metavar="FILE", help="also write one JSON row per scored window "
                   "(frame index, false-positive pixels, cover, precision, blobs hit, per-pixel agreement)")
    p.add_argument("--reference", choices=sorted(REFERENCES), default="mog2-50",
                   help="the background subtraction scored against (module docstring)")


def main(a) -> int:
    per_window = bool(getattr(a, "per_window", ""))
    r = agreement(a.out_dir, a.video, warmup_s=a.warmup, per_window=per_window,
                  reference=getattr(a, "reference", "mog2-50"))
    if per_window:
        with open(a.per_window, "w") as f:
            json.dump(r.pop("per_window"), f)
    print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m trace_anything_ros.eval.video_reference",
                                 description=__doc__.split("\n")[0])
    add_arguments(_p)
    sys.exit(main(_p.parse_args()))
