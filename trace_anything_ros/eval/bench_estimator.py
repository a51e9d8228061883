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

"""Per-window cost of the default estimator in each input regime (model.regimes), as the node runs it: a stream of
overlapping windows (stride 1), one ``predict`` per new frame, at the node's default input size and window.

``trace-anything-ros bench estimator [--size 96 128] [--window 4] [--windows 20] [--threads 2]``

Inputs per regime: rgbd_poses / rgbd -- a MuJoCo tabletop stream (RGB + depth, K, the camera's poses);
rgb_static / rgb_moving -- the semi-real clips of ``eval.clips`` (sweep, shake). Reports the median and 90th
percentile of ``predict`` seconds after ``--warmup`` windows, and whether the median is within ``--budget`` (issue 13:
0.25 s at 96x128, 4 frames). The RGB-D rows also time the bare network engine (the default before the regimes) on
the same windows, interleaved, so that a loaded machine slows both alike.
"""
from __future__ import annotations

import time
from typing import Dict

import numpy as np


def add_arguments(p) -> None:
    p.add_argument("--size", nargs=2, type=int, default=[96, 128], metavar=("H", "W"))
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--windows", type=int, default=20, help="timed windows per regime")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the node: every core but one)")
    p.add_argument("--regimes", default="rgbd_poses,rgbd,rgb_static,rgb_moving")
    p.add_argument("--budget", type=float, default=0.25, help="seconds per window the median must stay within")


def _sim_stream(n: int, size):
    from trace_anything_ros.sim.scene import Scene, SceneConfig
    from trace_anything_ros.sim.scene import inv_T
    scene = Scene(SceneConfig.from_preset("tabletop", seed=7, width=size[1], height=size[0]))
    try:
        frames = scene.record(n, 0.1, start=1.0)
    finally:
        scene.close()
    K = np.asarray(frames[0]["K"], np.float64) if "K" in frames[0] else None
    poses = [np.asarray(f["world_T_cam"], np.float64) for f in frames]
    return ([f["rgb"] for f in frames], [np.asarray(f["depth"], np.float32) for f in frames], K,
            poses, inv_T)


def run(args) -> Dict:
    import torch

    from trace_anything_ros.eval import clips
    from trace_anything_ros.model import regimes
    from trace_anything_ros.pipeline import preprocess_rgb

    torch.set_num_threads(int(args.threads))
    size = (int(args.size[0]), int(args.size[1]))
    n = int(args.window)
    total = int(args.windows) + int(args.warmup) + n - 1
    out: Dict = {"size": list(size), "window": n, "threads": int(args.threads), "regimes": {}, "pass": {}}
    wanted = [r.strip() for r in args.regimes.split(",") if r.strip()]
    sim = None
    for regime in wanted:
        est = regimes.create_estimator({"regime": regime, "input_size": list(size), "threads": int(args.threads)})
        if regime.startswith("rgbd"):
            if sim is None:
                sim = _sim_stream(total, size)
            rgb, depth, K, poses, inv_T = sim
            src = "MuJoCo tabletop (RGB-D, K, camera poses)"
        else:
            clip = clips.make_clip("sweep" if regime == "rgb_static" else "shake", seed=0, size=(240, 320),
                                   num_frames=total, split="holdout")
            rgb = [preprocess_rgb(f, size) for f in clip.frames]
            depth, K, poses = None, None, None
            src = f"eval.clips {clip.kind} ({clip.scene} + {clip.texture})"
        base = None
        if regime.startswith("rgbd"):  # the bare network engine (the default before the regimes), interleaved
            from trace_anything_ros.model.engine import create_estimator as bare
            base = bare({"weights": "embedded", "input_size": list(size), "threads": int(args.threads)})
        times, base_times = [], []
        for k in range(total - n + 1):
            fr = np.stack(rgb[k:k + n])
            kw = {}
            if depth is not None:
                kw["depth"] = np.stack(depth[k:k + n])
                kw["intrinsics"] = K
                if regime == "rgbd_poses" and poses is not None:
                    kw["cam_poses"] = np.stack([inv_T(poses[k]) @ p for p in poses[k:k + n]])
            tt = np.linspace(0, 1, n, dtype=np.float32)
            t0 = time.perf_counter()
            est.predict(fr, frame_keys=list(range(k, k + n)), times=tt, **kw)
            times.append(time.perf_counter() - t0)
            if base is not None:
                t0 = time.perf_counter()
                base.predict(fr, frame_keys=list(range(k, k + n)), times=tt, **kw)
                base_times.append(time.perf_counter() - t0)
        t = np.asarray(times[int(args.warmup):])
        out["regimes"][regime] = {"input": src, "ran": est.last_regime, "median_s": round(float(np.median(t)), 4),
                                  "p90_s": round(float(np.percentile(t, 90)), 4), "windows": int(t.size)}
        if base_times:
            b = np.asarray(base_times[int(args.warmup):])
            out["regimes"][regime]["bare_network_median_s"] = round(float(np.median(b)), 4)
        out["pass"][regime] = bool(np.median(t) <= float(args.budget))
        est.close()
    return out
