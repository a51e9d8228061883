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

"""``trace-anything-ros <command>``: one entry point; each command lives in the module that owns its concept.

A command module provides ``add_arguments(parser)`` and ``main(args) -> int``. Modules are imported lazily so
``--help`` and ROS-free commands never import rclpy or torch unless they need them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "run": ("trace_anything_ros.ros.runner", "start the nodes of a graph (same graph/params as the launch files)"),
    "demo": ("trace_anything_ros.demo", "the main job: sim camera + perception + planner, recorded, with overlays"),
    "process": ("trace_anything_ros.process", "run the perception pipeline offline on a video, rosbag2 or MCAP"),
    "check-weights": ("trace_anything_ros.model.cli_weights", "inspect a checkpoint: what loads, what is missing"),
    "export-onnx": ("trace_anything_ros.model.cli_export", "export a model to ONNX for a fixed window and size"),
    "eval": ("trace_anything_ros.eval.field_benchmark",
             "benchmark field estimators on generated scenes with ground truth"),
    "eval-ids": ("trace_anything_ros.eval.tracking", "object-id stability over a simulated stream (node code path)"),
    "eval-video": ("trace_anything_ros.eval.video_reference",
                   "agreement of `process` masks with background subtraction on a static-camera video"),
    "train": ("trace_anything_ros.train.cli", "train / fine-tune a model on simulated windows"),
    "bench": ("trace_anything_ros.eval.benchmarks",
              "performance benchmarks (node, model, motion, planner, soak, gpu, ...)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trace-anything-ros", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are added lazily (see main) so that an unrelated broken import cannot break every command.
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    p = argparse.ArgumentParser(prog=f"trace-anything-ros {name}", description=COMMANDS[name][1])
    module.add_arguments(p)
    args = p.parse_args(argv[1:])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
