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

"""The node graphs: one description read by both the launch files (launch/*.launch.py) and the runner
(`trace-anything-ros run --graph NAME`), so both start the same nodes with the same parameters and remaps.

A node's parameters, in the order both apply them (a later source overrides an earlier one):
  1. the node's parameter files (config/, NodeSpec.params),
  2. the graph's own overrides (NodeSpec.overrides: what this graph needs that differs from the files' defaults,
     e.g. the manipulation graph's camera is RGB-D with known poses and publishes /clock),
  3. the user's parameter files (launch ``params_file:=``, runner ``--params``),
  4. the user's single parameters (launch ``use_sim_time:=``, ``device:=``, ``weights:=``; runner
     ``--use-sim-time``, ``--param``).
Only what the user gives is applied: a launch argument left out overrides nothing (``node_parameters``).
``effective_parameters`` computes the values a node will start with (for tools that must know them without
starting it, e.g. the demo's planner workspace and sim scene).

It is also the one home of the node names, their topic names (``TOPICS``, ``PERCEPTION_OUTPUTS``, ...) and the
config paths (``config_dir``, ``config_file``).

Kept free of rclpy and launch imports (the launch files import it inside a ROS 2 install, the runner here).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Union


@dataclass(frozen=True)
class NodeSpec:
    name: str                      # node name (also the key in the parameter files)
    executable: str                # `ros2 run trace_anything_ros <executable>` (scripts/nodes/)
    module: str                    # `python -m <module>` (the runner)
    params: List[str] = field(default_factory=list)   # parameter files, relative to the package's config/
    remaps: Dict[str, str] = field(default_factory=dict)
    lifecycle: bool = False        # managed node: the runner / launch file drive configure -> activate
    overrides: Dict[str, Any] = field(default_factory=dict)  # this graph's parameters, applied after the files
    model: bool = False            # takes the model launch arguments (device:=, weights:=)


# Node names, topic names and config paths are spelled here only: the nodes, the launch files, the runner, the
# demo, process / recorder / benchmarks and the tests import them.
PERCEPTION_NAME = "trajectory_field_node"
PLANNER_NAME = "manipulation_planner_node"
SIM_CAMERA_NAME = "sim_camera_node"
EXECUTOR_NAME = "sim_executor_node"

# the perception node's outputs and the planner's, as private names (the node publishes "~/" + name)
PERCEPTION_OUTPUTS = {"field": "trajectory_field", "tracks": "tracks", "mask": "dynamic_mask",
                      "objects": "dynamic_objects", "markers": "markers"}
PLANNER_OUTPUTS = {"plan": "plan", "ee_path": "ee_path", "plan_windows": "plan_windows"}
PLANNER_SERVICES = {"set_object_goal": "set_object_goal", "cancel": "cancel"}
# the simulated camera's ground truth (sim_camera_node publishes them relative: "gt/...")
SIM_GT = {"gt_mask": "/gt/dynamic_mask", "gt_object_poses": "/gt/object_poses"}

CAMERA_REMAPS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "depth": "/camera/depth/image_raw",
    "camera_pose": "/camera/pose",
}


def private(name: str) -> str:
    """A node's private topic name (``~/name``), as its publisher / service is created."""
    return "~/" + name


def relative(topic: str) -> str:
    """``topic`` without its leading slash: the name a node creates so that its namespace applies
    (sim_camera_node publishes ``camera/image_raw``, which is ``/camera/image_raw`` outside a namespace)."""
    return topic.lstrip("/")


def node_topic(node: str, name: str, namespace: str = "") -> str:
    """The absolute name of ``node``'s private topic ``name`` (``/ns/node/name``)."""
    ns = namespace.strip("/")
    return f"/{ns + '/' if ns else ''}{node}/{name}"


# Output topics of the graph's nodes (their private ~/ topics under the default node names) and the executor's.
PERCEPTION_NS = "/" + PERCEPTION_NAME
PLANNER_NS = "/" + PLANNER_NAME
EXECUTOR_NS = "/" + EXECUTOR_NAME
TOPICS = {
    "image": CAMERA_REMAPS["image"], "depth": CAMERA_REMAPS["depth"], "info": CAMERA_REMAPS["camera_info"],
    "camera_pose": CAMERA_REMAPS["camera_pose"], "clock": "/clock", "diagnostics": "/diagnostics",
    **{k: node_topic(PERCEPTION_NAME, v) for k, v in PERCEPTION_OUTPUTS.items()},
    **{k: node_topic(PLANNER_NAME, v) for k, v in {**PLANNER_OUTPUTS, **PLANNER_SERVICES}.items()},
    "planner_parameters": f"{PLANNER_NS}/set_parameters",
    "goal_pose": "/goal_pose", "goal_image": "/goal_image",
    "executor_result": f"{EXECUTOR_NS}/result", "object_visibility": f"{EXECUTOR_NS}/object_visibility",
    **SIM_GT,
}

PERCEPTION_NODE = NodeSpec(
    name=PERCEPTION_NAME, executable="trajectory_field_node",
    module="trace_anything_ros.ros.trajectory_field_node", params=["perception.yaml"],
    remaps=dict(CAMERA_REMAPS), lifecycle=True, model=True)

SIM_CAMERA_NODE = NodeSpec(
    name=SIM_CAMERA_NAME, executable="sim_camera_node", module="trace_anything_ros.ros.sim_camera_node",
    params=["sim_camera.yaml"], remaps={})

PLANNER_NODE = NodeSpec(
    name=PLANNER_NAME, executable="manipulation_planner_node",
    module="trace_anything_ros.ros.manipulation_planner_node", params=["planner.yaml"],
    remaps={"tracks": TOPICS["tracks"], "dynamic_objects": TOPICS["objects"],
            "image": CAMERA_REMAPS["image"], "depth": CAMERA_REMAPS["depth"],
            "camera_info": CAMERA_REMAPS["camera_info"]},
    lifecycle=True)

# The manipulation graph's camera (sim_camera_node) is RGB-D, publishes its optical frame's pose on /camera/pose
# (the graph's 'camera_pose' remap) and drives /clock with scene time (its messages carry scene-time stamps), so
# every node runs on sim time, and the perception node uses depth (metric) and the camera poses -- as the demo.
SIM_TIME = {"use_sim_time": True}

GRAPHS: Dict[str, List[NodeSpec]] = {
    # perception only: a camera (driver, bag, sim) publishes /camera/{image_raw,camera_info,depth/image_raw}
    "perception": [PERCEPTION_NODE],
    # the manipulation stack: simulated RGB-D camera + perception + goal-conditioned planner
    "manipulation": [
        replace(SIM_CAMERA_NODE, overrides=dict(SIM_TIME)),
        replace(PERCEPTION_NODE, overrides={**SIM_TIME, "use_depth": True, "camera_pose.enabled": True}),
        replace(PLANNER_NODE, overrides=dict(SIM_TIME)),
    ],
    # perception behind Gazebo (launch/sim_gazebo.launch.py: gz sim + ros_gz_bridge publish /clock and the RGB-D
    # camera of worlds/tabletop.sdf, a fixed camera): sim time, depth on
    "gazebo": [replace(PERCEPTION_NODE, overrides={**SIM_TIME, "use_depth": True})],
}

# launch argument -> the parameter it sets (on the nodes with NodeSpec.model for the model ones)
LAUNCH_PARAM_ARGS = {"use_sim_time": "use_sim_time", "device": "model.device", "weights": "model.weights",
                     "image_transport": "image_transport"}
MODEL_LAUNCH_ARGS = ("device", "weights")
CAMERA_LAUNCH_ARGS = ("image_transport",)   # on the nodes that read the camera image (a remap of 'image')


def takes_launch_arg(spec: NodeSpec, arg: str) -> bool:
    """Whether launch argument ``arg`` (of LAUNCH_PARAM_ARGS) sets its parameter on the node of ``spec``."""
    if arg in MODEL_LAUNCH_ARGS:
        return spec.model
    if arg in CAMERA_LAUNCH_ARGS:
        return "image" in spec.remaps
    return True


def graph(name: str) -> List[NodeSpec]:
    if name not in GRAPHS:
        raise KeyError(f"unknown graph {name!r} (known: {', '.join(GRAPHS)})")
    return GRAPHS[name]


def node_spec(graph_name: str, node_name: str) -> NodeSpec:
    """The NodeSpec of node ``node_name`` in graph ``graph_name`` (its overrides included)."""
    for spec in graph(graph_name):
        if spec.name == node_name:
            return spec
    raise KeyError(f"graph {graph_name!r} has no node {node_name!r} (its nodes: "
                   f"{', '.join(s.name for s in graph(graph_name))})")


def config_dir(share_dir: Optional[str] = None) -> str:
    """config/ of an installed package (share_dir) or of this checkout."""
    if share_dir:
        return os.path.join(share_dir, "config")
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "config")


def config_file(name: str, share_dir: Optional[str] = None) -> str:
    """The path of config file ``name`` (e.g. ``planner.yaml``) of an installed package or of this checkout."""
    return os.path.join(config_dir(share_dir), name)


def parse_param_string(text: str):
    """``NAME:=VALUE`` (a ``--param`` / ``-p`` rule) as ``(name, value)``, the value read as YAML as rcl reads it
    (``1`` int, ``1.0`` float, ``true`` bool, ``[0.1, 0.2]`` list, anything else a string)."""
    import yaml

    if ":=" not in text:
        raise ValueError(f"a parameter is NAME:=VALUE, got {text!r}")
    name, raw = text.split(":=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and raw.strip()[:1] not in ("'", '"'):  # rcl reads an unquoted 1e-3 as a number
        for number in (int, float):
            try:
                return name.strip(), number(value.strip())
            except ValueError:
                pass
    return name.strip(), ("" if value is None else value)


def _file_parameters(path: str, node: str, namespace: str = "") -> Dict[str, Any]:
    """The parameters a parameter file gives node ``node`` (keys ``node``, ``/node``, ``/ns/node``, ``/**``,
    ``/**/node``, applied in file order as rcl does)."""
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    ns = namespace.strip("/")
    keys = {node, f"/{node}", "/**", f"/**/{node}"} | ({f"/{ns}/{node}"} if ns else set())
    out: Dict[str, Any] = {}
    for key, entry in doc.items():
        if key in keys and isinstance(entry, dict):
            out.update(entry.get("ros__parameters") or {})
    return out


def effective_parameters(spec: NodeSpec, share_dir: Optional[str] = None, user_files: Sequence[str] = (),
                         user_params: Optional[Dict[str, Any]] = None, param_strings: Sequence[str] = (),
                         namespace: str = "") -> Dict[str, Any]:
    """The parameter values the node of ``spec`` starts with, as the runner and the launch files set them: its
    files, the graph's overrides, the user's files and single parameters (``node_parameters``), then the
    ``NAME:=VALUE`` rules (the runner's ``--param``, the user's last word). Only what the sources name: a
    parameter none of them sets keeps the node's declared default (config/<node>.yaml lists them all). For tools
    that must know a node's configuration without starting it (the demo's workspace and scene)."""
    out: Dict[str, Any] = {}
    for src in node_parameters(spec, share_dir, user_files, user_params):
        out.update(_file_parameters(src, spec.name, namespace) if isinstance(src, str) else src)
    out.update(parse_param_string(p) for p in param_strings)
    return out


def param_files(spec: NodeSpec, share_dir: Optional[str] = None) -> List[str]:
    d = config_dir(share_dir)
    return [os.path.join(d, p) for p in spec.params if os.path.exists(os.path.join(d, p))]


def unique_param_files(files: Sequence[str]) -> List[str]:
    """Each file once, at its last position (later files override earlier ones, so keeping the last occurrence
    of a repeated file gives the same parameters)."""
    real = [os.path.realpath(f) for f in files]
    return [f for i, (f, r) in enumerate(zip(files, real)) if r not in real[i + 1:]]


def node_parameters(spec: NodeSpec, share_dir: Optional[str] = None, user_files: Sequence[str] = (),
                    user_params: Optional[Dict[str, Any]] = None) -> List[Union[str, Dict[str, Any]]]:
    """The node's parameter sources in the order they apply (see the module doc): parameter file paths (str) and
    dicts of single parameters. The graph's own file passed again as a user file is applied once, at the user's
    position. ``user_params``: only what the user gave (an empty launch argument is not a value)."""
    user = unique_param_files([os.path.abspath(f) for f in user_files if f])
    again = {os.path.realpath(f) for f in user}
    out: List[Union[str, Dict[str, Any]]] = [
        f for f in param_files(spec, share_dir) if os.path.realpath(f) not in again]
    if spec.overrides:
        out.append(dict(spec.overrides))
    out += user
    if user_params:
        out.append(dict(user_params))
    return out


_PARAM_DIR: List[str] = []


def write_params_file(node_key: str, params: Dict[str, Any], directory: Optional[str] = None) -> str:
    """``{node_key: {ros__parameters: params}}`` as a parameter file in ``directory`` (default: one temporary
    directory per process, removed at exit; a node reads its files at start-up)."""
    import tempfile

    import yaml
    if directory is None:
        if not _PARAM_DIR:
            import atexit
            import shutil
            _PARAM_DIR.append(tempfile.mkdtemp(prefix="trace_anything_ros_params_"))
            atexit.register(shutil.rmtree, _PARAM_DIR[0], True)
        directory = _PARAM_DIR[0]
    fd, path = tempfile.mkstemp(prefix=node_key.strip("/").replace("/", "_") + "_", suffix=".yaml", dir=directory)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump({node_key: {"ros__parameters": dict(params)}}, f, default_flow_style=False)
    return path


def node_parameter_files(spec: NodeSpec, share_dir: Optional[str] = None, user_files: Sequence[str] = (),
                         user_params: Optional[Dict[str, Any]] = None, directory: Optional[str] = None,
                         namespace: str = "") -> List[str]:
    """``node_parameters`` as parameter files only, what both the launch files and the runner pass (in order, as
    --params-file). The single parameters go into files keyed by the node's name as config/*.yaml key it
    (``trajectory_field_node``): rcl applies a node's parameters entry by entry in the order each key first
    appears, so only the same key everywhere gives "a later source overrides an earlier one" (a ``-p`` rule or
    launch_ros's own dict files, keyed '/**' or '/trajectory_field_node', would be applied after every file keyed
    ``trajectory_field_node``, the user's included). In a namespace, where that bare key matches nothing, the key
    is the node's fully qualified name."""
    ns = namespace.strip("/")
    key = f"/{ns}/{spec.name}" if ns else spec.name
    return [src if isinstance(src, str) else write_params_file(key, src, directory)
            for src in node_parameters(spec, share_dir, user_files, user_params)]
