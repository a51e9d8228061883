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

"""Startup failures of the node (bad parameter file values, model load failure), the runner, launch files and
the documented parameter file. The graphs the runner starts here run the analytic stand-in estimator
(``estimator.factory: analytic_estimator:create``): these tests are about processes and lifecycles, not the model."""
import os
import pathlib
import py_compile
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ros_helpers import node_env
from test_node_perception import NODE, Harness, start_node

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.ros
def test_bad_startup_parameter_and_model_failure_are_reported(ros_context):
    proc = start_node("window.length:=1", env=node_env(TAR_ANALYTIC_FAIL="1"))
    h = Harness(ros_context, "startup_test")
    try:
        assert h.lc.wait_for_service(30.0)
        assert not h.lc.change_state("configure")  # window.length=1 is out of range [2, 64]
        assert h.lc.get_state() == "unconfigured"
        assert h.wait_diag(lambda s, v: s.level == b"\x02" and "window.length" in s.message)
        assert h.set_params(window__length=4)[0].successful  # fixable while unconfigured
        assert h.lc.change_state("configure")
        assert not h.lc.change_state("activate")  # the factory raises: model failed to load
        assert h.wait_diag(lambda s, v: s.level == b"\x02" and "model failed to load" in s.message
                           and v.get("model_state") == "failed")
        assert h.lc.get_state() == "inactive" and proc.poll() is None
    finally:
        h.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    out = proc.stdout.read()
    assert "out of range" in out and "window.length" in out and "TAR_ANALYTIC_FAIL" in out


def _read_until_active(proc, timeout=90.0):
    """The runner's log lines (stderr) up to its first "activate -> ok" (or its exit / ``timeout``)."""
    lines = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "activate -> ok" in line:
            break
    return lines


@pytest.mark.ros
def test_runner_starts_graph_activates_and_exits_on_sigint(ros_context):
    env = node_env()
    cmd = [sys.executable, "-m", "trace_anything_ros.cli", "run", "--graph", "perception", "--params",
           str(REPO / "config" / "perception.yaml"), "--param", "estimator.factory:=analytic_estimator:create",
           "--param", "input_height:=32", "--param", "input_width:=48", "--remap", "image:=/runner_test/image"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        lines = _read_until_active(proc)
        assert any("activate -> ok (state active)" in ln for ln in lines), "".join(lines)
        assert any("-r image:=/runner_test/image" in ln and "--params-file" in ln for ln in lines)
        h = Harness(ros_context, "runner_test")
        try:
            assert h.lc.wait_for_service(10) and h.lc.get_state() == "active"
            assert h.node.get_publishers_info_by_topic(f"{NODE}/tracks") or h.wait(
                lambda: h.node.get_publishers_info_by_topic(f"{NODE}/tracks"), 10)
            assert h.wait(lambda: h.node.get_subscriptions_info_by_topic("/runner_test/image"), 10)
        finally:
            h.close()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
        rest = proc.stderr.read()
        assert rc == 0, rest
        assert "'trajectory_field_node': 0" in rest
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _start_runner_until_active(topic: str, env=None):
    cmd = [sys.executable, "-m", "trace_anything_ros.cli", "run", "--graph", "perception", "--params",
           str(REPO / "config" / "perception.yaml"), "--param", "estimator.factory:=analytic_estimator:create",
           "--param", "input_height:=32", "--param", "input_width:=48", "--remap", f"image:={topic}"]
    proc = subprocess.Popen(cmd, env=env or node_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    lines = _read_until_active(proc)
    pids = [int(m.group(1)) for ln in lines for m in [re.search(r"started trajectory_field_node \(pid (\d+)\)", ln)]
            if m]
    assert pids and any("activate -> ok" in ln for ln in lines), "".join(lines)
    # the graph's own perception.yaml, passed again with --params, is passed once
    started = next(ln for ln in lines if "started trajectory_field_node" in ln)
    assert started.count("--params-file") == 1 and started.count("perception.yaml") == 1, started
    return proc, pids[0]


@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_node_survives_the_runner(sig, clean_stale_shm):
    """SIGTERM: the runner stops its children; SIGKILL (no clean-up possible): PR_SET_PDEATHSIG makes the kernel
    send SIGTERM to the node, which exits.

    A process killed with SIGKILL leaves its Fast DDS shared-memory ports behind in /dev/shm, possibly locked: a
    later participant that gets the same port can hang in it (CI: every test_planner_node test and the README's
    launch, after this test). So these processes run in a domain of their own (their ports are not the other
    tests'), and their leftovers are removed once they are gone (``clean_stale_shm``)."""
    domain = str((int(os.environ["ROS_DOMAIN_ID"]) - 100 + 25) % 100 + 100)
    proc, pid = _start_runner_until_active(f"/runner_kill_{sig.name.lower()}/image",
                                           env=node_env(ROS_DOMAIN_ID=domain))
    try:
        assert _alive(pid)
        assert open(f"/proc/{pid}/cmdline").read().count("--params-file") == 1
        proc.send_signal(sig)
        proc.wait(30)
        if sig == signal.SIGTERM:
            assert proc.returncode == 0, proc.stderr.read()
        end = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
        assert not _alive(pid), f"trajectory_field_node (pid {pid}) survived the runner's {sig.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        clean_stale_shm()


def test_runner_deduplicates_param_files(tmp_path):
    from trace_anything_ros.ros import runner
    a, b = str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")
    assert runner.unique_param_files([a, b, a]) == [b, a]  # the last occurrence keeps the override order
    assert runner.unique_param_files([a, str(tmp_path / "." / "a.yaml")]) == [str(tmp_path / "." / "a.yaml")]


def test_launch_files_compile_and_use_the_graph():
    for name in ("perception.launch.py", "manipulation.launch.py", "_graph_launch.py"):
        py_compile.compile(str(REPO / "launch" / name), doraise=True)
    text = (REPO / "launch" / "_graph_launch.py").read_text()
    for arg in ("namespace", "params_file", "use_sim_time", "device", "weights", "image_transport"):
        assert f'"{arg}": "' in text  # _graph_launch.ARGS: declared with an empty default (overrides nothing)
    assert "trace_anything_ros.ros.graph" in text


def test_graph_is_complete_and_points_at_real_files():
    from trace_anything_ros.ros.graph import GRAPHS, param_files
    assert [s.name for s in GRAPHS["perception"]] == ["trajectory_field_node"]
    assert [s.name for s in GRAPHS["manipulation"]] == ["sim_camera_node", "trajectory_field_node",
                                                        "manipulation_planner_node"]
    for specs in GRAPHS.values():
        for s in specs:
            assert (REPO / "scripts" / "nodes" / s.executable).exists(), s.executable
    from trace_anything_ros.ros.graph import config_dir  # the imported package's config/ (cwd-independent)
    assert param_files(GRAPHS["perception"][0]) == [os.path.join(config_dir(), "perception.yaml")]
    assert os.path.isfile(os.path.join(config_dir(), "perception.yaml"))


def test_perception_yaml_documents_every_parameter_with_valid_defaults():
    from trace_anything_ros.ros.params import PERCEPTION, check
    path = REPO / "config" / "perception.yaml"
    params = yaml.safe_load(path.read_text())["trajectory_field_node"]["ros__parameters"]
    assert set(params) == {s.name for s in PERCEPTION}
    lines = path.read_text().splitlines()
    for s in PERCEPTION:
        i = next(i for i, ln in enumerate(lines) if ln.strip().startswith(f"{s.name}:"))
        assert lines[i - 1].strip().startswith("#"), f"{s.name} is not documented"
        assert check(s, params[s.name]) is None
        assert params[s.name] == s.default


def test_runner_command_line():
    import argparse
    from trace_anything_ros.ros import runner
    from trace_anything_ros.ros.graph import PERCEPTION_NODE
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    a = p.parse_args(["--namespace", "robot1", "--params", "x.yaml", "--remap", "image:=/c/img", "--use-sim-time"])
    cmd = runner.node_command(PERCEPTION_NODE, a)
    assert cmd[1:3] == ["-m", "trace_anything_ros.ros.trajectory_field_node"]
    assert "__ns:=/robot1" in cmd and "image:=/c/img" in cmd
    # --use-sim-time: a parameter file keyed by the node (graph.node_parameter_files), after the user's files
    last = yaml.safe_load(open(cmd[max(i for i, x in enumerate(cmd) if x == "--params-file") + 1]))
    assert last == {"/robot1/trajectory_field_node": {"ros__parameters": {"use_sim_time": True}}}
    assert cmd[cmd.index("--params-file", cmd.index("--params-file") + 1) + 1] == os.path.abspath("x.yaml")
