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

"""Benchmark of the motion stack: mask + objects per window, and field-evaluation throughput vs memcpy.

``trace-anything-ros bench motion`` or ``python -m trace_anything_ros.eval.bench_motion [--frames 8 --size 128]``.
Reports medians over repeated runs on a synthetic window (one translating object and an articulated one).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=8, help="frames per window (8)")
    parser.add_argument("--size", type=int, default=128, help="field height and width in pixels (128)")
    parser.add_argument("--ctrl", type=int, default=10, help="control points per curve (10)")
    parser.add_argument("--repeats", type=int, default=30, help="timed repetitions (30)")
    parser.add_argument("--noise", type=float, default=0.003, help="relative control-point noise (0.003)")
    parser.add_argument("--budget-ms", type=float, default=30.0, help="target for mask + objects (30 ms)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _median_ms(fn, repeats: int) -> tuple:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 90))


def _scene(size):
    from ..field import synthetic

    z = 1.6
    return synthetic.Scene([
        synthetic.Body(center=(-0.35, -0.1, z), half_size=(0.15, 0.12), velocity=(0.3, 0.05, 0.0)),
        synthetic.Body(center=(0.1, 0.2, z + 0.2), half_size=(0.14, 0.06), velocity=(0.0, -0.2, 0.05)),
        synthetic.Body(center=(0.37, 0.2, z + 0.195), half_size=(0.12, 0.05), parent=1, pivot=(0.24, 0.2, z + 0.195),
                       angular_velocity=(0.0, 0.0, 0.9)),
    ])


def run(args) -> dict:
    from ..field import synthetic
    from ..field.evaluate import evaluate_curves
    from ..field.timemap import build_time_map
    from ..motion import MotionParams, analyze

    n, s, d = args.frames, args.size, args.ctrl
    field, truth = synthetic.make_field(_scene(s), num_frames=n, H=s, W=s, num_ctrl=d, noise=args.noise, seed=0)
    params = MotionParams()
    res = analyze(field, params=params)
    med, p90 = _median_ms(lambda: analyze(field, params=params), args.repeats)
    stages = {k: float(v) for k, v in res.timings_ms.items()}
    gt = truth.moving_mask(-1)
    iou = float((res.mask & gt).sum() / max((res.mask | gt).sum(), 1))

    # with measured depth (the field's own z: a metric field), where the forecasts' support planes
    # (motion.forecast.support_floors) run; the same call without them is the baseline, same process
    import dataclasses
    from ..motion.forecast import ForecastParams

    tm0 = build_time_map(field.stamps, field.frame_times)
    depth = evaluate_curves(field.ctrl_pts[-1], [tm0.frame_times[-1]], d_axis=0)[0][..., 2]
    no_planes = dataclasses.replace(params, forecast_model=ForecastParams(support_plane=False))
    dep_ms, _ = _median_ms(lambda: analyze(field, depth=depth, params=params), args.repeats)
    dep0_ms, _ = _median_ms(lambda: analyze(field, depth=depth, params=no_planes), args.repeats)

    # field evaluation throughput: every frame's curves at every frame time ([N, N, H, W, 3] float32 out) vs a
    # plain numpy copy of the same number of bytes (the control points in)
    tm = build_time_map(field.stamps, field.frame_times)
    times = tm.frame_times
    ctrl = np.ascontiguousarray(field.ctrl_pts)
    dst = np.empty_like(ctrl)
    ev_ms, _ = _median_ms(lambda: evaluate_curves(ctrl, times, d_axis=1), args.repeats)
    cp_ms, _ = _median_ms(lambda: np.copyto(dst, ctrl), args.repeats)
    nbytes = ctrl.nbytes
    out = {
        "window": {"frames": n, "height": s, "width": s, "ctrl": d},
        "mask_objects_ms_median": med,
        "mask_objects_ms_p90": p90,
        "budget_ms": args.budget_ms,
        "within_budget": med <= args.budget_ms,
        "stages_ms_last": stages,
        "objects": len(res.objects),
        "expected_objects": truth.num_moving_instances,
        "mask_iou": iou,
        "with_depth_ms_median": dep_ms,
        "with_depth_no_planes_ms_median": dep0_ms,
        "support_planes_time_ratio": dep_ms / dep0_ms,
        "eval_ms_median": ev_ms,
        "memcpy_ms_median": cp_ms,
        "eval_GBps_in": nbytes / ev_ms / 1e6,
        "memcpy_GBps": nbytes / cp_ms / 1e6,
        "eval_over_memcpy_time_ratio": ev_ms / cp_ms,
        "bytes": nbytes,
    }
    return out


def main(args) -> int:
    out = run(args)
    if getattr(args, "json", False):
        print(json.dumps(out, indent=2))
    else:
        w = out["window"]
        print(f"motion bench: {w['frames']} frames, {w['height']}x{w['width']}, D={w['ctrl']}")
        print(f"  mask + objects: median {out['mask_objects_ms_median']:.1f} ms (p90 {out['mask_objects_ms_p90']:.1f})"
              f", budget {out['budget_ms']:.0f} ms -> {'OK' if out['within_budget'] else 'OVER'}")
        print("  stages (last run): " + ", ".join(f"{k} {v:.1f}" for k, v in out["stages_ms_last"].items()))
        print(f"  objects {out['objects']} (expected {out['expected_objects']}), mask IoU {out['mask_iou']:.3f}")
        print(f"  with depth: {out['with_depth_ms_median']:.1f} ms vs {out['with_depth_no_planes_ms_median']:.1f} ms "
              f"without the forecasts' support planes (ratio {out['support_planes_time_ratio']:.2f}x)")
        print(f"  field evaluation [N,N,H,W,3]: {out['eval_ms_median']:.2f} ms vs memcpy of the control points "
              f"{out['memcpy_ms_median']:.2f} ms (ratio {out['eval_over_memcpy_time_ratio']:.1f}x)")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m trace_anything_ros.eval.bench_motion",
                                description=__doc__.splitlines()[0])
    add_arguments(p)
    sys.exit(main(p.parse_args()))
