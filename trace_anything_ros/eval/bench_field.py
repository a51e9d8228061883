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

"""`trace-anything-ros bench field`: the dense field's round trip between two nodes over DDS, against rclpy's own
round trip of the same bytes as a uint8[] message, in the same run (issue 15 asks >= 0.9x; the rclpy work lives in
ros/node_bench.py ``bench_field``). Also part of `bench node`.

    trace-anything-ros bench field [--reps 20] [--xproc] [--json FILE]
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=int, default=20, help="round trips per path (median; 2 more as warm-up)")
    parser.add_argument("--min-ratio", type=float, default=0.9,
                        help="pass: field round trip >= this x rclpy's uint8[] round trip of the same bytes")
    parser.add_argument("--xproc", action="store_true", help="also between two processes (field vs uint8[], builtin "
                        "transports and config/fastdds_large_messages.xml; reported, not part of the pass)")
    parser.add_argument("--json", default="", help="also write the result to this file")


def run(args) -> dict:
    from trace_anything_ros.ros.node_bench import bench_field
    from trace_anything_ros.ros.node_main import own_context
    with own_context() as ctx:
        out = bench_field(reps=args.reps, context=ctx)
    if args.xproc:
        import os

        from trace_anything_ros.ros.graph import config_dir
        from trace_anything_ros.ros.node_bench import bench_field_xproc_ratio
        large = os.path.join(config_dir(), "fastdds_large_messages.xml")
        out["xproc"] = {"default": bench_field_xproc_ratio(args.reps), "large_messages": bench_field_xproc_ratio(
            args.reps, profile=large)}
    out["pass"] = {f"field_ge_{args.min_ratio:g}x_rclpy_uint8": out["field_vs_rclpy_uint8"] >= args.min_ratio}
    return out
