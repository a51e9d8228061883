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

"""Object-id stability over a simulated stream, through the node's code path (``PerceptionPipeline`` fed window
after window, its tracker kept across windows), against the scene's ground-truth bodies.

`trace-anything-ros eval-ids --seeds 0,1,2`. Per window, each published object
(its pixels in ``Products.labels``, newest frame, model grid) is matched to the moving ground-truth body it overlaps
most (IoU >= ``min_iou``, bodies from MuJoCo's segmentation render). Figures:

- ``id_switches``: consecutive matched windows of one body whose object ids differ (0 = perfectly stable);
- ``ids_per_body``: distinct object ids one body received (1 = perfectly stable), mean over bodies;
- ``detected``: fraction of (window, moving visible body) pairs with a matched object;
- ``spurious_per_window``: published objects matched to no moving body;
- ``distinct_ids``: all object ids published (what a consumer such as the planner sees churn through).

The estimator is any FieldEstimator factory; default: the shipped model (the node's default weights).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np


def id_stability(estimator=None, preset: str = "tabletop", seed: int = 0, duration: float = 20.0,
                 rate: float = 10.0, width: int = 320, height: int = 240, window: int = 4, hop: int = 4,
                 use_depth: bool = True, min_iou: float = 0.2, min_body_px: int = 20,
                 progress: bool = False) -> dict:
    """Run the pipeline over ``duration`` s of scene ``preset``/``seed`` rendered at ``rate`` Hz, a window every
    ``hop`` frames (the node at about the demo's window rate)."""
    from trace_anything_ros.model.preprocess import prepare_labels
    from trace_anything_ros.pipeline import (Frame, FrameIngest, PerceptionPipeline, PipelineParams, WindowSpec,
                                             frame_intrinsics, preprocess_depth, preprocess_rgb)
    from trace_anything_ros.sim.scene import Scene, SceneConfig

    own = estimator is None
    if own:
        from trace_anything_ros.pipeline import load_estimator
        estimator = load_estimator("", {"weights": "embedded", "window": window})
    hw = tuple(int(x) for x in estimator.input_size)
    spec = WindowSpec(length=window, stride=1)
    ingest = FrameIngest(spec.ring_capacity(), window=spec)
    pipeline = PerceptionPipeline(estimator, PipelineParams())
    scene = Scene(SceneConfig.from_preset(preset, seed=seed, width=width, height=height))
    n_frames = int(round(duration * rate))
    seg_of = {}
    per_body = defaultdict(list)  # body -> [(window index, object id)]
    visible = 0
    spurious, windows, all_ids = 0, 0, set()
    try:
        for i in range(n_frames):
            t = i / rate
            scene.set_time(t)
            fr = scene.render()
            stamp = int(round(t * 1e9)) + 1
            K = frame_intrinsics(fr["K"], fr["rgb"].shape[:2], hw)
            f = Frame(stamp_ns=stamp, rgb=preprocess_rgb(fr["rgb"], hw), frame_id="cam",
                      depth=preprocess_depth(fr["depth"], hw) if use_depth else None, intrinsics=K,
                      source_size=fr["rgb"].shape[:2])
            ingest.push(f)
            seg_of[f.key] = (prepare_labels(fr["seg_body"], hw), t)
            if (i + 1) % hop or i + 1 < window:
                continue
            win = ingest.take_window(timeout=0.0)
            if win is None:
                continue
            pr = pipeline.process(win)
            seg, t_new = seg_of[win[-1].key]
            t_old = seg_of[win[0].key][1]
            moving = [b for b in scene.moving_bodies(t_old, t_new) if (seg == b).sum() >= min_body_px]
            visible += len(moving)
            labels = pr.labels if pr.labels is not None else np.zeros(hw, np.uint16)
            matched_bodies = {}
            for o in pr.objects:
                all_ids.add(int(o.id))
                m = labels == o.id
                best, best_iou = None, 0.0
                for b in moving:
                    g = seg == b
                    iou = np.logical_and(m, g).sum() / max(np.logical_or(m, g).sum(), 1)
                    if iou > best_iou:
                        best, best_iou = b, iou
                if best is None or best_iou < min_iou:
                    spurious += 1
                elif best not in matched_bodies or matched_bodies[best][1] < best_iou:
                    matched_bodies[best] = (int(o.id), best_iou)
            for b, (oid, _) in matched_bodies.items():
                per_body[b].append((windows, oid))
            windows += 1
            for k in [k for k in seg_of if k < win[0].key]:
                del seg_of[k]
            if progress:
                print(f"\r[eval-ids] window {windows}  objects {len(pr.objects)}  ids so far {len(all_ids)}",
                      end="", file=sys.stderr, flush=True)
    finally:
        scene.close()
        if own:
            estimator.close()
    if progress:
        print(file=sys.stderr)
    switches = sum(sum(1 for (_, a), (_, b) in zip(s, s[1:]) if a != b) for s in per_body.values())
    ids_per_body = [len({oid for _, oid in s}) for s in per_body.values()]
    detected = sum(len(s) for s in per_body.values())
    return {"preset": preset, "seed": seed, "duration_s": duration, "rate_hz": rate, "window": window, "hop": hop,
            "use_depth": use_depth, "windows": windows, "bodies_matched": len(per_body),
            "id_switches": switches, "ids_per_body": float(np.mean(ids_per_body)) if ids_per_body else float("nan"),
            "detected": detected / visible if visible else float("nan"),
            "spurious_per_window": spurious / max(windows, 1), "distinct_ids": len(all_ids),
            "per_body": {int(b): " ".join(f"{w}:{oid}" for w, oid in s) for b, s in sorted(per_body.items())}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tabletop", help="scene preset")
    p.add_argument("--seeds", default="0", help="comma-separated scene seeds")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of scene time per seed (10 Hz)")
    p.add_argument("--hop", type=int, default=4, help="a window every HOP frames")
    p.add_argument("--window", type=int, default=4, help="frames per window")
    p.add_argument("--no-depth", action="store_true", help="no depth images (as for a plain video)")
    p.add_argument("--factory", default="", help="FieldEstimator factory module:function (default: shipped model)")


def main(a) -> int:
    est = None
    if a.factory:
        from trace_anything_ros.pipeline import load_estimator
        est = load_estimator(a.factory, {"window": a.window})
    out = [id_stability(est, a.preset, int(s), a.duration, window=a.window, hop=a.hop, use_depth=not a.no_depth,
                        progress=True) for s in a.seeds.split(",")]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m trace_anything_ros.eval.tracking", description=__doc__.split("\n")[0])
    add_arguments(_p)
    sys.exit(main(_p.parse_args()))
