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

"""`trace-anything-ros bench soak`: reliability under load (the rclpy work lives in ros/soak.py).

Perception node (own process, analytic estimator slower than the stream) flooded with 640x480 rgb8 at 60 Hz:
RSS and fds flat after warm-up (+-5 %), latency p50/p99 of published results (header stamp -> receive), the
frame accounting of its diagnostics matching the outputs, bounded queues. Planner node flooded with tracks /
dynamic_objects: no backlog, CPU and RSS bounded. ``--duration 600`` is the full soak; CI runs ~60 s.

    python -m trace_anything_ros.eval.bench_soak --duration 600
    trace-anything-ros bench soak --duration 600
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the perception flood")
    parser.add_argument("--rate", type=float, default=60.0, help="camera rate (Hz) of the flood")
    parser.add_argument("--model-delay", type=float, default=0.2, help="seconds per window of the analytic model")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before RSS/fd samples count "
                        "(default: min(20, duration / 4))")
    parser.add_argument("--planner-duration", type=float, default=None,
                        help="seconds of the planner flood (default: duration / 4, at least 10)")
    parser.add_argument("--planner-rate", type=float, default=100.0, help="tracks messages per second")
    parser.add_argument("--hostile-fraction", type=float, default=0.0,
                        help="share of the camera messages replaced by hostile ones (issue 14; e.g. 0.1)")
    parser.add_argument("--skip-planner", action="store_true")
    parser.add_argument("--json", default="", help="also write the result to this file")


def run(args) -> dict:
    from trace_anything_ros.ros.soak import soak_perception, soak_planner
    warm = args.warmup if args.warmup is not None else min(20.0, args.duration / 4)
    out = {"perception": soak_perception(args.duration, args.rate, args.model_delay, warmup=warm,
                                         hostile_fraction=args.hostile_fraction)}
    if not args.skip_planner:
        pd = args.planner_duration if args.planner_duration is not None else max(10.0, args.duration / 4)
        out["planner"] = soak_planner(pd, args.planner_rate, warmup=min(5.0, pd / 3))
    out["pass"] = {f"{k}.{c}": v for k in ("perception", "planner") if k in out for c, v in out[k]["pass"].items()}
    return out


if __name__ == "__main__":
    from .benchmarks import main as bench_main
    sys.exit(bench_main(argparse.Namespace(suite="soak", rest=sys.argv[1:])))
