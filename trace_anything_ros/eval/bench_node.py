"""`trace-anything-ros bench node`: perception-node performance (the rclpy work lives in ros/bench.py).

Figures: enqueue of a 640x480 rgb8 frame (target <= 2 ms), build+publish+receive of an 8x10x128x128 float32
field (target >= 1 GB/s), node overhead = end-to-end latency - model time (target <= 10 % of model time or
<= 30 ms), RSS over a 30 Hz stream with a model slower than the stream (target flat within +-5 %).
Short by default (--duration 40); `--duration 600` for the full soak.
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of the 30 Hz stream")
    parser.add_argument("--model-delay", type=float, default=0.25,
                        help="seconds per window of the analytic estimator (slower than the 30 Hz stream)")
    parser.add_argument("--factory", default="analytic_estimator:create",
                        help="estimator factory of the node under test (module:function)")
    parser.add_argument("--policy", default="latency", choices=("latency", "throughput"),
                        help="the node's window.policy (latency: default)")


def run(args) -> dict:
    from trace_anything_ros.ros.bench import run as ros_run
    return ros_run(args)


def main(args) -> int:
    res = run(args)
    print(json.dumps(res, indent=2))
    return 0 if all(res.get("pass", {}).values()) else 1
