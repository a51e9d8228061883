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

"""``trace-anything-ros export-onnx``: export the network for a fixed window length and input size (opset >= 17)
and verify the file with onnxruntime against torch."""
from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--weights", help="checkpoint (official .pt or our .safetensors)")
    src.add_argument("--preset", default="compact", choices=["official", "compact"],
                     help="architecture preset with random weights when --weights is absent (default compact)")
    parser.add_argument("--window", "-n", type=int, default=4, help="fixed number of frames N (default 4)")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"),
                        help="input size in the user's orientation (default: the preset's)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--tol", type=float, default=1e-4, help="max relative error ORT vs torch (default 1e-4)")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("-o", "--output", required=True, help="output .onnx path")


def main(args) -> int:
    try:
        from .engine import build_torch_model
        from .onnx_export import export_onnx
        model, note = build_torch_model(args.weights, args.preset)
        size = tuple(args.input_size) if args.input_size else tuple(model.cfg.input_size)
        report = export_onnx(model, args.output, window=args.window, input_size=size, opset=args.opset,
                             verify=not args.no_verify, tol=args.tol)
    except Exception as e:  # noqa: BLE001
        print(f"export-onnx: failed: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    report["model"] = note
    print(json.dumps(report, indent=2))
    return 0
