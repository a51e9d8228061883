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

"""`trace-anything-ros bench hostile`: cost of rejecting hostile input (issue 14; rclpy side: ros/node_bench.py).

Each hostile class (1 x 4e6 and 20000 x 1 strips, data longer than step*height, a 1 MiB frame_id, a 100 KB encoding,
a stamp 1 s in the future, 30 s back, a frame of another size, depth of 1e37 m, a degenerate camera matrix) through
the real subscription callbacks of an in-process trajectory_field_node, a valid 640x480 rgb8 frame before each:
per-message wall time (target: median <= 5 ms) and tracemalloc peak (target: <= 4 x a valid frame's).

    trace-anything-ros bench hostile [--n 30]
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=30, help="messages per class")
    parser.add_argument("--json", default="", help="also write the result to this file")


def run(args) -> dict:
    from trace_anything_ros.ros.node_bench import bench_hostile
    from trace_anything_ros.ros.node_main import own_context
    with own_context() as ctx:
        return bench_hostile(n=args.n, context=ctx)
