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

"""`trace-anything-ros bench <suite> [args]`: dispatch to ``trace_anything_ros/eval/bench_<suite>.py``
(``add_arguments(parser)``, ``run(args) -> dict``, optional ``main(args) -> int``; without ``main`` the result is
printed as JSON, also written to ``--json FILE`` where the suite has that option, and the exit code is 1 when any
of its ``pass`` entries is false)."""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

import trace_anything_ros.eval as _eval


def suites():
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(_eval.__path__) if m.name.startswith("bench_"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=suites(), help="benchmark suite")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of the suite (see bench <suite> -h)")


def main(args) -> int:
    mod = importlib.import_module(f"trace_anything_ros.eval.bench_{args.suite}")
    p = argparse.ArgumentParser(prog=f"trace-anything-ros bench {args.suite}",
                                description=(mod.__doc__ or "").split("\n")[0])
    mod.add_arguments(p)
    sub = p.parse_args(args.rest)
    if hasattr(mod, "main"):
        return int(mod.main(sub) or 0)
    res = mod.run(sub)
    text = json.dumps(res, indent=2, default=str)
    print(text)
    path = getattr(sub, "json", "")
    if isinstance(path, str) and path:  # a suite's --json FILE: the same result, also written there
        with open(path, "w") as f:
            f.write(text)
    return 0 if all(res.get("pass", {True: True}).values()) else 1
