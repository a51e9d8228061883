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

"""``trace-anything-ros check-weights PATH``: what loads, what is missing/unexpected, parameter count, dtype.

Refuses a missing, corrupt, truncated, wrong-architecture or non-tensor file in ONE line on stderr (exit code 2,
no traceback). Files are read with ``torch.load(weights_only=True)`` or safetensors only.
"""
from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    parser.add_argument("path", help="checkpoint: official trace_anything.pt (or .ckpt) or our .safetensors")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--preset", choices=["official", "compact"], help="check against this preset's architecture")
    g.add_argument("--config", help="check against this config (our JSON, or an official-style config.json)")
    parser.add_argument("--build", action="store_true", help="also build the model with the weights (needs RAM)")


def _config(args):
    from .config import ModelConfig, preset
    if args.preset:
        return preset(args.preset)
    if args.config:
        with open(args.config) as f:
            d = json.load(f)
        return ModelConfig.from_official_json(d) if "official_model_args" in d or "dpt" in d else \
            ModelConfig.from_dict(d)
    return None


def main(args) -> int:
    try:
        from .checkpoint import load_model, read_checkpoint
        cfg = _config(args)
        if args.build:
            _, report = load_model(args.path, cfg)
        else:
            _, report = read_checkpoint(args.path, cfg)
    except Exception as e:  # noqa: BLE001 - one line, no traceback, for every failure
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"check-weights: refused: {msg}", file=sys.stderr)
        return 2
    print(report.summary())
    print("OK: all encoder, decoder, time-head and track-head tensors present with the expected shapes")
    return 0
