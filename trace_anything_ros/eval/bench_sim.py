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

"""`trace-anything-ros bench sim`: rendering + ground-truth throughput of the MuJoCo scenes (frames/s)."""
from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--frames", type=int, default=8, help="frames per window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--scene", default="moving_camera")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-fps", type=float, default=5.0, help="pass threshold (render + ground truth)")


def run(args) -> dict:
    from trace_anything_ros.sim.ground_truth import compute_window
    from trace_anything_ros.sim.scene import Scene, SceneConfig

    scene = Scene(SceneConfig.from_preset(args.scene, seed=args.seed, width=args.width, height=args.height))
    scene.render()  # warm-up: renderer / GL context creation
    render_s = gt_s = 0.0
    cpu0 = time.process_time()
    n = 0
    for w in range(args.windows):
        t0 = time.perf_counter()
        frames = scene.record(args.frames, 0.1, start=1.0 + 1.5 * w)
        t1 = time.perf_counter()
        compute_window(frames, pose_fn=scene.poses_at)
        t2 = time.perf_counter()
        render_s += t1 - t0
        gt_s += t2 - t1
        n += args.frames
    cpu = time.process_time() - cpu0
    scene.close()
    fps = n / (render_s + gt_s)
    return dict(suite="sim", scene=args.scene, size=f"{args.width}x{args.height}", frames=n,
                render_ms_per_frame=round(1e3 * render_s / n, 2), gt_ms_per_frame=round(1e3 * gt_s / n, 2),
                fps_render_plus_gt=round(fps, 2), fps_render_only=round(n / render_s, 2),
                cpu_s_per_frame=round(cpu / n, 4), min_fps=args.min_fps,
                ground_truth="field (10 ctrl pts, 31 dense fit samples) + exact positions + visibility + masks",
                **{"pass": {"fps": fps >= args.min_fps}})
