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

"""`trace-anything-ros bench <suite>`: every suite resolves and documents its options; the cheap ones run end to end
from outside the checkout (an installed package: no test/ on the path, another working directory).

The benchmarks themselves are not unit tests (their figures go to the README); here only that the commands work
and report what they promise.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

# every suite the README lists (a new eval/bench_<suite>.py shows up in suites() and must be added here)
SUITES = {"closed_loop", "estimator", "field", "gpu", "hostile", "model", "motion", "node", "planner", "sim", "soak"}


def test_every_suite_resolves_and_has_help(capsys):
    from trace_anything_ros import cli
    from trace_anything_ros.eval import benchmarks

    assert set(benchmarks.suites()) == SUITES
    for suite in sorted(SUITES):
        with pytest.raises(SystemExit) as e:
            cli.main(["bench", suite, "--help"])
        assert e.value.code == 0, suite
        out = capsys.readouterr().out
        assert out.startswith(f"usage: trace-anything-ros bench {suite}"), (suite, out[:200])


def _outside_checkout_env(tmp_path):
    """The environment of a user of the installed package: no PYTHONPATH into the checkout, another cwd."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HOME"] = str(tmp_path)
    return env


def _bench(tmp_path, *args, timeout=300):
    out_json = tmp_path / "res.json"
    p = subprocess.run([sys.executable, "-m", "trace_anything_ros.cli", "bench", *args, "--json", str(out_json)],
                       cwd=tmp_path, env=_outside_checkout_env(tmp_path), capture_output=True, text=True,
                       timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    return p.returncode, json.loads(out_json.read_text())


@pytest.mark.ros
def test_bench_field_reports_the_ratio_to_rclpy_uint8(tmp_path):
    """`bench field`: the field's round trip between two nodes and rclpy's round trip of the same bytes as uint8[]
    measured in one run; the ratio is what the pass entry says (the figure itself: README)."""
    rc, res = _bench(tmp_path, "field", "--reps", "3")
    assert res["field_message_MB"] == pytest.approx(8 * 10 * 128 * 128 * 4 * 4 / 1e6)
    for path in ("field", "uint8", "field_msgpath", "uint8_raw"):
        assert 0 < res[f"{path}_roundtrip_ms"] < 5000, path
    ratio = res["uint8_roundtrip_ms"] / res["field_roundtrip_ms"]
    assert math.isfinite(ratio) and res["field_vs_rclpy_uint8"] == pytest.approx(ratio)
    assert res["pass"] == {"field_ge_0.9x_rclpy_uint8": ratio >= 0.9}
    assert rc == (0 if ratio >= 0.9 else 1)


@pytest.mark.ros
def test_bench_hostile_runs_from_an_installed_package(tmp_path):
    """`bench hostile` runs the node with the analytic stand-in from the package (no test/ helpers needed)."""
    rc, res = _bench(tmp_path, "hostile", "--n", "2")
    assert res["messages_per_class"] == 2 and "valid_640x480_rgb8" in res["classes"]
    assert res["classes"]["valid_640x480_rgb8"]["outcome"] == ["accepted"]
    assert res["callback_errors"] == 0 and res["pass"]["raw_formats_accepted"]
    assert set(res["raw_formats_vs_rgb8_ms_median"]) == {"bayer_rggb8", "yuv422_yuy2"}
    assert rc in (0, 1) and set(res["pass"]) >= {"all_rejected", "no_callback_error"}


def test_node_env_adds_the_checkout_only_when_there_is_one(tmp_path, monkeypatch):
    """Node subprocesses of the benchmarks get test/ + the checkout on PYTHONPATH from a checkout only."""
    from trace_anything_ros.ros import soak

    monkeypatch.delenv("PYTHONPATH", raising=False)
    env = soak.node_env(X_TEST=1)
    assert env["X_TEST"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(soak.REPO / "test"), str(soak.REPO)]
    monkeypatch.setattr(soak, "REPO", tmp_path)  # as installed: no test/ beside the package
    assert "PYTHONPATH" not in soak.node_env()
    assert soak.ANALYTIC_FACTORY.split(":")[0] == "trace_anything_ros.model.analytic"


def test_cheap_ros_free_suites_run(tmp_path):
    """`bench motion` and `bench planner`, small, from outside the checkout: finite timings, their own pass rule."""
    env = _outside_checkout_env(tmp_path)
    cli = [sys.executable, "-m", "trace_anything_ros.cli", "bench"]
    p = subprocess.run(cli + ["motion", "--repeats", "2", "--size", "32", "--frames", "4", "--json"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads(p.stdout)
    assert m["window"] == {"frames": 4, "height": 32, "width": 32, "ctrl": 10}
    assert 0 < m["mask_objects_ms_median"] < 5000 and m["within_budget"] == (m["mask_objects_ms_median"]
                                                                             <= m["budget_ms"])
    assert 0 < m["with_depth_no_planes_ms_median"] < 5000 and math.isclose(
        m["support_planes_time_ratio"], m["with_depth_ms_median"] / m["with_depth_no_planes_ms_median"], rel_tol=1e-9)
    out_json = tmp_path / "planner.json"
    p = subprocess.run(cli + ["planner", "--repeats", "2", "--warmup", "1", "--points", "200", "--json",
                              str(out_json)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    r = json.loads(out_json.read_text())
    assert r["suite"] == "planner" and r["points"] == 200 and r["repeats"] == 2
    assert p.returncode == (0 if r["meets_budget"] else 1)
