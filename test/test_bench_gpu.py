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

"""`trace-anything-ros bench gpu` and `bench model` through the CLI's bench dispatch (as the README lists them).

Without CUDA (every CI machine) `bench gpu` says so in one line and exits 0; with CUDA (marker gpu) a small run
of its parts gives finite timings and the parity fixture within the dtypes' tolerances.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "trace_anything_ros.cli", "bench"]


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def test_bench_gpu_without_cuda_says_so_in_one_line_and_exits_0():
    if _cuda():
        pytest.skip("CUDA is available here: test_bench_gpu_on_cuda covers this machine")
    out = subprocess.run(CLI + ["gpu"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench gpu: no CUDA"), out.stdout
    assert "Traceback" not in out.stderr, out.stderr


def test_bench_model_runs_through_the_bench_dispatch():
    """`bench model` crashed in the dispatch ('Namespace' object is not iterable); no part: only the header."""
    out = subprocess.run(CLI + ["model", "--parts", "", "--frames", "3"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["frames"] == 3


@pytest.mark.gpu
@pytest.mark.timeout(900)
def test_bench_gpu_on_cuda(fixtures_dir, tmp_path):
    out = subprocess.run(CLI + ["gpu", "--frames", "2", "--size", "64", "96", "--repeats", "1", "--no-onnx",
                                "--fixtures", str(fixtures_dir), "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["cuda"] is True
    par = res["parity"]
    assert par["cpu_fp32_vs_official"]["ctrl_pts"] < 1e-4, par
    assert par["fp32_vs_cpu_fp32"]["ctrl_pts"] < 1e-3, par   # TF32 may be on
    for dt in ("fp16", "bf16"):
        assert par[f"{dt}_vs_cpu_fp32"]["ctrl_pts"] < 0.1, par
    for dt in ("fp32", "fp16", "bf16"):
        r = res["official"][dt]
        assert "error" not in r, r
        assert math.isfinite(r["window_s_median"]) and r["peak_mem_gb"] > 0, r
        assert r["cache_max_abs_diff"] <= 1e-5, r   # cached encoder tokens: the same tokens (0 on CPU)
