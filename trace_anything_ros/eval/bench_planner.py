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

"""Planner benchmark: planning time per window.

Two workloads, both with ``--points`` object points (default 2000) over ``--frames`` times (default 8):

* ``object_pose``: ``ManipulationPlanner.plan_to_object_pose`` on a tracked object's points ``[frames, points, 3]``
  (rigid motion + 1 mm noise + 20 % outliers), target pose 25 cm away: the per-window replanning of the node.
* ``goal_image``: ``plan_from_goal_image`` on a 2-frame goal field whose selected object has ``--points`` pixels,
  ``num_waypoints = frames``.

Each is timed ``--repeats`` times after ``--warmup`` calls; the report gives wall-clock median / p90 / min
milliseconds, the median process CPU time (robust to other load on a shared machine; compare the load average in
the report), and whether the wall-clock medians meet ``--budget-ms`` (default 10). Usage::

    .venv/bin/python -m trace_anything_ros.eval.bench_planner [--points 2000 --frames 8 --repeats 200 --json out]
    trace-anything-ros bench planner ...   (when the bench dispatcher is present)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=2000, help="object points per frame")
    parser.add_argument("--frames", type=int, default=8, help="frames (times) per window / object waypoints")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--budget-ms", type=float, default=10.0, help="target median planning time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the result dict to this file")


def _object_pose_case(points: int, frames: int, seed: int):
    from scipy.spatial.transform import Rotation

    from ..planning import se3

    r = np.random.default_rng(seed)
    base_T_cam = se3.make_pose(np.diag([1.0, -1.0, -1.0]), [0.4, 0.0, 1.2])
    obj = r.uniform([-0.03, -0.02, 0.0], [0.03, 0.02, 0.05], size=(points, 3))
    poses = [se3.make_pose(Rotation.from_rotvec([0, 0, 0.05 * k]).as_matrix(), [0.4 + 0.005 * k, 0.1, 0.0])
             for k in range(frames)]
    pts = np.stack([se3.transform_points(P, obj) for P in poses]) + r.normal(size=(frames, points, 3)) * 0.001
    out = r.random((frames, points)) < 0.2
    pts[out] += r.uniform(-0.1, 0.1, size=(int(out.sum()), 3))
    pts_cam = se3.transform_points(se3.invert(base_T_cam), pts)
    w = r.uniform(1.0, 5.0, size=(frames, points))
    target = se3.make_pose(Rotation.from_rotvec([0, 0, 0.8]).as_matrix(), [0.3, -0.15, 0.05])
    return pts_cam, w, target, base_T_cam


def _goal_image_case(points: int, seed: int):
    from ..field.synthetic import Body, Scene, make_field
    from ..planning import se3
    from ..planning.object_motion import ObjectSelection

    # Square plate whose pixel count ~ points: side in pixels = sqrt(points); f = 200 px at 0.6 m.
    side_px = float(np.sqrt(points))
    half = side_px / 2 / 200.0 * 0.6
    H = W = int(max(64, side_px * 2.5))
    K = np.array([[200.0, 0, W / 2], [0, 200.0, H / 2], [0, 0, 1]])
    body = Body(center=(0.0, 0.0, 0.6), half_size=(half, half * 0.999), velocity=(0.1, 0.05, 0.0),
                angular_velocity=(0.0, 0.0, 0.4))
    fld, truth = make_field(Scene([body], background_z=1.1, background_tilt=0.0), num_frames=2, H=H, W=W,
                            num_ctrl=4, K=K, noise_abs=0.001, seed=seed)
    sel = ObjectSelection(labels=truth.labels[0], object_id=1)
    return fld, sel, se3.make_pose(np.diag([1.0, -1.0, -1.0]), [0.4, 0.0, 1.2]), int((truth.labels[0] == 1).sum())


def _time(fn, repeats: int, warmup: int):
    for _ in range(warmup):
        fn()
    ts = np.empty(repeats)
    cpu = np.empty(repeats)
    for i in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ts[i] = time.perf_counter() - t0
        cpu[i] = time.process_time() - c0
    ms = ts * 1e3
    # cpu_median_ms: process CPU time per plan (all threads): the cost without the waiting that a loaded
    # machine adds to the wall time.
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min()),
            "mean_ms": float(ms.mean()), "cpu_median_ms": float(np.median(cpu) * 1e3)}


def run(args) -> dict:
    from ..planning import ManipulationPlanner, PlannerParams

    planner = ManipulationPlanner(PlannerParams(num_waypoints=max(2, args.frames), max_gripper_width=0.2))
    pts, w, target, base_T_cam = _object_pose_case(args.points, args.frames, args.seed)
    plan = planner.plan_to_object_pose(pts, w, target, base_T_cam, now=0.0)
    if not plan.ok:
        raise RuntimeError(f"object_pose benchmark plan not OK: {plan.status.name}: {plan.reason}")
    res_pose = _time(lambda: planner.plan_to_object_pose(pts, w, target, base_T_cam, now=0.0), args.repeats,
                     args.warmup)
    fld, sel, base_T_cam2, n_px = _goal_image_case(args.points, args.seed)
    plan2 = planner.plan_from_goal_image(fld, sel, base_T_cam2, now=0.0)
    if not plan2.ok:
        raise RuntimeError(f"goal_image benchmark plan not OK: {plan2.status.name}: {plan2.reason}")
    res_img = _time(lambda: planner.plan_from_goal_image(fld, sel, base_T_cam2, now=0.0), args.repeats,
                    args.warmup)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    result = {
        "suite": "planner",
        "points": args.points,
        "frames": args.frames,
        "repeats": args.repeats,
        "budget_ms": args.budget_ms,
        "object_pose": res_pose,
        "goal_image": dict(res_img, object_pixels=n_px, field_hw=[fld.height, fld.width]),
        "meets_budget": bool(res_pose["median_ms"] <= args.budget_ms and res_img["median_ms"] <= args.budget_ms),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                    "loadavg": load},
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def main(args) -> int:
    res = run(args)
    print(json.dumps(res, indent=2))
    return 0 if res["meets_budget"] else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m trace_anything_ros.eval.bench_planner",
                                description=__doc__.split("\n")[0])
    add_arguments(p)
    sys.exit(main(p.parse_args()))
