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

"""`trace-anything-ros bench node`: perception-node performance (the rclpy work lives in ros/node_bench.py).

Figures: enqueue of a 640x480 rgb8 frame (target <= 2 ms); the round trip of an 8x10x128x128 float32 field between
two nodes against rclpy's own round trip of the same bytes as uint8[] (target >= 0.9x; also `bench field`), and
between two processes; node overhead = end-to-end latency - model time (target <= 10 % of model time or <= 30 ms);
RSS over a 30 Hz stream with a model slower than the stream (target flat within +-5 %). Short by default
(--duration 40); `--duration 600` for the full soak.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of the 30 Hz stream")
    parser.add_argument("--model-delay", type=float, default=0.25,
                        help="seconds per window of the analytic estimator (slower than the 30 Hz stream)")
    parser.add_argument("--factory", default="trace_anything_ros.model.analytic:create",
                        help="estimator factory of the node under test (module:function)")
    parser.add_argument("--policy", default="latency", choices=("latency", "throughput"),
                        help="the node's window.policy (latency: default)")
    parser.add_argument("--large-messages", action="store_true",
                        help="run the camera stream (this process and the node) with config/fastdds_large_messages.xml:"
                        " with Fast DDS's builtin 512 KB shared-memory segment a best-effort 640x480 rgb8 stream "
                        "loses frames (figures: README, performance)")
    parser.add_argument("--json", default="", help="also write the result to this file")


def run(args) -> dict:
    import os
    if getattr(args, "large_messages", False) and not os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        from trace_anything_ros.ros.runner import LARGE_MESSAGES_PROFILE
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = LARGE_MESSAGES_PROFILE  # before this process's rclpy.init
    from trace_anything_ros.ros.node_bench import run as ros_run
    return ros_run(args)
