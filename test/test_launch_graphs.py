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

"""The launch files, run for real: `launch_test` (launch_testing) on each launch file installed by a colcon build,
and one truth for parameters (the nodes `ros2 launch` starts and those of `trace-anything-ros run` for the same
graph have identical parameters).

Each launch test (test/launch/launch_graph.py, one `launch_test` process in the workspace's environment) checks:
lifecycle nodes active within 30 s, parameters (the embedded model, depth), output rates and frame ids, the log
naming the loaded weights, and after shutdown every exit code 0 and no ERROR line or traceback. One launched graph
serves every assertion (and the parameter dump). Skipped with a reason where the ROS 2 tools are absent.

  perception.launch.py     + a sim_camera_node stand-in (the camera driver), with launch arguments given
  manipulation.launch.py   no arguments at all (the acceptance case): sim camera + perception + planner
  sim_gazebo.launch.py     gazebo:=false (gz sim / ros_gz cannot run here) + a stand-in publishing /clock
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from launch_helpers import REPO, bad_lines, dump_parameters, ros_env, tools_missing, workspace

CAMERA_FRAME = "sim_camera_optical_frame"
TRACKS = "/trajectory_field_node/tracks"
MASK = "/trajectory_field_node/dynamic_mask"
PERCEPTION_PARAMS = "trajectory_field_node:\n  ros__parameters:\n    tracks.stride: 24\n"


def _topics(min_hz, min_busy=0.0):
    """tracks: rate and frame id; the mask (published per window like the tracks): its frame id. ``min_busy``:
    where the camera outpaces the model, the tracks' rate times the node's median model time (from /diagnostics)
    must reach it: the worker runs the model back to back (0.70-0.72 measured on 2 cores, the rest is
    post-processing), whatever the machine's speed. The rate floor alone is the graph's pace on the slowest machine
    (1.9-2.4 Hz here for the manipulation graph, model 0.30-0.36 s)."""
    return {TRACKS: {"type": "trace_anything_ros/msg/TrajectoryArray", "min_hz": min_hz, "frame_id": CAMERA_FRAME,
                     "min_busy": min_busy},
            MASK: {"type": "sensor_msgs/msg/Image", "min_hz": 0.0, "frame_id": CAMERA_FRAME}}


def _cases(tmp: pathlib.Path):
    """graph -> (launch spec, the runner arguments that say the same as the launch arguments)."""
    pfile = tmp / "user_params.yaml"
    pfile.write_text(PERCEPTION_PARAMS)
    return {
        "perception": (dict(
            launch_file="perception.launch.py",
            launch_args={"params_file": str(pfile), "device": "cpu", "image_topic": "/camera/image_raw",
                         "image_transport": "raw"},
            standin={"publish_clock": False, "publish_gt": False, "rate_hz": 10.0},
            lifecycle=["/trajectory_field_node"],
            params={"/trajectory_field_node": {"model.weights": "embedded", "model.device": "cpu", "use_depth": False,
                                               "use_sim_time": False, "tracks.stride": 24,
                                               "image_transport": "raw"}},
            topics=_topics(1.0), log_contains=["compact_sim.safetensors"], nodes=["/trajectory_field_node"]),
            ["--params", str(pfile), "--param", "model.device:=cpu", "--param", "image_transport:=raw", "--remap",
             "image:=/camera/image_raw"]),
        "manipulation": (dict(
            launch_file="manipulation.launch.py", launch_args={}, standin=None,
            lifecycle=["/trajectory_field_node", "/manipulation_planner_node"],
            params={"/trajectory_field_node": {"model.weights": "embedded", "use_depth": True,
                                               "camera_pose.enabled": True, "use_sim_time": True},
                    "/manipulation_planner_node": {"use_sim_time": True}, "/sim_camera_node": {"use_sim_time": True}},
            topics=_topics(1.0, min_busy=0.5), log_contains=["compact_sim.safetensors"],
            nodes=["/sim_camera_node", "/trajectory_field_node", "/manipulation_planner_node"]), []),
        "gazebo": (dict(
            launch_file="sim_gazebo.launch.py", launch_args={"gazebo": "false"},
            standin={"publish_clock": True, "publish_gt": False, "rate_hz": 10.0},
            lifecycle=["/trajectory_field_node"],
            params={"/trajectory_field_node": {"model.weights": "embedded", "use_depth": True, "use_sim_time": True}},
            topics=_topics(1.0), log_contains=["compact_sim.safetensors"], nodes=["/trajectory_field_node"]), []),
    }


GRAPHS = ["perception", "manipulation", "gazebo"]
_DUMPS: dict = {}


# ------------------------------------------------------------------------------------- without ROS tools
def test_node_parameters_order_graph_files_overrides_then_the_users(tmp_path):
    from trace_anything_ros.ros.graph import GRAPHS as G, config_dir, node_parameters
    cfg = pathlib.Path(config_dir())  # the imported package's config/ (the checkout's, or a copy's under colcon test)
    perception = {s.name: s for s in G["manipulation"]}["trajectory_field_node"]
    assert node_parameters(perception) == [str(cfg / "perception.yaml"),
                                           {"use_sim_time": True, "use_depth": True, "camera_pose.enabled": True}]
    user = tmp_path / "u.yaml"
    got = node_parameters(perception, user_files=[str(user), ""], user_params={"model.device": "cuda"})
    assert got[-2:] == [str(user), {"model.device": "cuda"}]  # an empty launch argument is no file
    # the graph's own file given again by the user applies once, at the user's place (after the overrides)
    again = node_parameters(perception, user_files=[str(cfg / "perception.yaml")])
    assert again == [{"use_sim_time": True, "use_depth": True, "camera_pose.enabled": True},
                     str(cfg / "perception.yaml")]
    # the perception graph keeps the files' values: nothing to override
    assert node_parameters(G["perception"][0]) == [str(cfg / "perception.yaml")]


def test_runner_passes_the_same_sources_in_the_same_order():
    """Files as files; the graph's settings and --use-sim-time as files keyed as config/*.yaml key the node, so that
    the user's later files override them (as -p rules, '/**' entries, rcl would apply them after every file keyed
    'trajectory_field_node')."""
    import argparse

    import yaml

    from trace_anything_ros.ros import runner
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    args = p.parse_args(["--graph", "manipulation", "--param", "model.device:=cpu", "--use-sim-time",
                         "--params", os.path.join(runner.config_dir(), "perception.yaml"),
                         "--namespace", "robot1"])
    spec = {s.name: s for s in runner.graph("manipulation")}["trajectory_field_node"]
    cmd = runner.node_command(spec, args)
    files = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--params-file"]
    assert len(files) == 3 and files[1].endswith("perception.yaml"), files  # the graph's file at the user's place
    # in a namespace keyed by the fully qualified name (the bare key of config/*.yaml matches nothing there)
    assert yaml.safe_load(open(files[0])) == {"/robot1/trajectory_field_node": {"ros__parameters": {
        "use_sim_time": True, "use_depth": True, "camera_pose.enabled": True}}}
    assert yaml.safe_load(open(files[2])) == {"/robot1/trajectory_field_node": {"ros__parameters": {
        "use_sim_time": True}}}
    assert cmd.index("model.device:=cpu") > cmd.index(files[2])
    # without: the key of config/*.yaml, so that rcl applies them in command-line order
    files = [a for a in runner.node_command(spec, p.parse_args(["--graph", "manipulation"])) if a.endswith(".yaml")]
    assert list(yaml.safe_load(open(files[1]))) == ["trajectory_field_node"]


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "config").glob("*.xml"))
                         + ["package.xml"])
def test_xml_files_are_well_formed(path):
    ET.parse(REPO / path)  # raises on e.g. '--' inside a comment


# ------------------------------------------------------------------------------------- with the tools
@pytest.fixture(scope="module")
def ws():
    why = tools_missing()
    if why:
        pytest.skip(why)
    return workspace()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return _cases(tmp_path_factory.mktemp("launch_cases"))


@pytest.mark.launch_testing
@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPHS)
def test_launch_file(graph, ws, cases, tmp_path):
    spec, _ = cases[graph]
    spec = dict(spec, dump=str(tmp_path / "launch_params.json"))
    env = ros_env(ws, TAR_LAUNCH_SPEC=json.dumps(spec), PYTHONUNBUFFERED="1")
    t = time.monotonic()
    out = subprocess.run(["launch_test", str(REPO / "test" / "launch" / "launch_graph.py")], capture_output=True,
                         text=True, env=env, timeout=300, cwd=tmp_path)
    text = out.stdout + out.stderr
    print(f"launch_test {spec['launch_file']}: {time.monotonic() - t:.1f} s, exit {out.returncode}")
    print("\n".join(ln for ln in text.splitlines() if "[launch_graph]" in ln))
    if pathlib.Path(spec["dump"]).is_file():  # the parameter comparison does not depend on the rates
        _DUMPS[graph] = json.loads(pathlib.Path(spec["dump"]).read_text())
    assert out.returncode == 0, text[-6000:]
    assert bad_lines(text) == [], text[-6000:]


@pytest.mark.launch_testing
@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPHS)
def test_runner_starts_nodes_with_the_launch_files_parameters(graph, ws, cases, ros_context):
    """`trace-anything-ros run --graph G` (with the runner's spelling of the launch arguments the launch test gave)
    and `ros2 launch` start nodes whose parameters are identical, every parameter of every node."""
    if graph not in _DUMPS:
        pytest.skip(f"no parameter dump of the launched {graph} graph (test_launch_file[{graph}] did not get there)")
    from rclpy.executors import SingleThreadedExecutor
    import rclpy
    _, run_args = cases[graph]
    cmd = [sys.executable, "-m", "trace_anything_ros.cli", "run", "--graph", graph, "--no-activate"] + run_args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    node = rclpy.create_node("tar_param_dump", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    try:
        got = {n: dump_parameters(node, ex, n, timeout=60.0) for n in _DUMPS[graph]}
    finally:
        ex.shutdown()
        node.destroy_node()
        proc.send_signal(signal.SIGINT)
        try:
            log = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0]
    assert proc.returncode == 0, log
    want = _DUMPS[graph]
    for n in want:
        diff = {k: (want[n].get(k), got[n].get(k)) for k in set(want[n]) | set(got[n])
                if want[n].get(k) != got[n].get(k)}
        assert diff == {}, f"{n}: launch vs runner (name: (launch, runner))"
    assert bad_lines(log) == [], log


@pytest.mark.ros
def test_runner_user_file_overrides_the_graphs_own_settings(tmp_path, ros_context):
    """The documented order (graph files, graph settings, the user's files, the user's single parameters) holds in
    the runner as under launch_ros: a --params file beats the graph's use_depth (it did not while the graph's
    settings were '-p' rules), and --param beats the file."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    user = tmp_path / "u.yaml"
    user.write_text("trajectory_field_node:\n  ros__parameters:\n    use_depth: false\n    tracks.stride: 20\n")
    cmd = [sys.executable, "-m", "trace_anything_ros.cli", "run", "--graph", "gazebo", "--no-activate",
           "--params", str(user), "--param", "tracks.stride:=28"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    node = rclpy.create_node("tar_param_order", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    try:
        got = dump_parameters(node, ex, "/trajectory_field_node", timeout=60.0)
    finally:
        ex.shutdown()
        node.destroy_node()
        proc.send_signal(signal.SIGINT)
        log = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, log
    assert (got["use_sim_time"], got["use_depth"], got["tracks.stride"]) == (True, False, 28), got


def test_launch_arguments_reach_the_nodes_they_concern():
    """device / weights set the perception node's model only; image_transport every node that reads the camera
    image (perception, planner), not the simulated camera that publishes it; use_sim_time every node."""
    from trace_anything_ros.ros.graph import GRAPHS as G, LAUNCH_PARAM_ARGS, takes_launch_arg
    specs = {s.name: s for s in G["manipulation"]}
    takes = {name: {a for a in LAUNCH_PARAM_ARGS if takes_launch_arg(s, a)} for name, s in specs.items()}
    assert takes == {"sim_camera_node": {"use_sim_time"},
                     "trajectory_field_node": {"use_sim_time", "device", "weights", "image_transport"},
                     "manipulation_planner_node": {"use_sim_time", "image_transport"}}, takes
