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

"""Shared by perception.launch.py and manipulation.launch.py: turn a graph of trace_anything_ros.ros.graph into
launch_ros actions (needs launch + launch_ros: a ROS 2 install, or the venv with the vendored tools).

The nodes' parameter files come from ``graph.node_parameter_files``, the same function the runner
(`trace-anything-ros run --graph NAME`) uses: the graph's files, the graph's own settings, then only what the
user gave (single parameters as files keyed like config/*.yaml, not as launch_ros dicts: see that function). A launch
argument left out (empty) overrides nothing -- in particular not the YAML's
``model.weights: embedded`` -- so `ros2 launch` and the runner start nodes with identical parameters.
"""
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from trace_anything_ros.ros.graph import (CAMERA_REMAPS, LAUNCH_PARAM_ARGS, graph, node_parameter_files,
                                          takes_launch_arg)

ARGS = {
    "namespace": "namespace of every node",
    "params_file": "parameter file applied to every node after the graph's own files and overrides",
    "use_sim_time": "use_sim_time of every node: true / false (empty: the graph's choice)",
    "device": "model.device of the perception node, e.g. cuda (empty: the parameter file's)",
    "weights": "model.weights of the perception node: a checkpoint path, or 'embedded' (empty: the parameter file's)",
    "image_transport": "image_transport of the nodes that read the camera: raw, or compressed (image_transport's "
                       "<image>/compressed and <depth>/compressedDepth) (empty: the parameter file's)",
}


def _given(context, name: str) -> str:
    return context.launch_configurations.get(name, "").strip()


def _value(name: str, text: str):
    if name == "use_sim_time":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"use_sim_time:={text!r}: expected true or false")
        return text.lower() == "true"
    return text


def _nodes(context, graph_name: str):
    share = get_package_share_directory("trace_anything_ros")
    ns = _given(context, "namespace")
    user_files = [_given(context, "params_file")]
    actions = []
    for spec in graph(graph_name):
        user = {param: _value(arg, _given(context, arg)) for arg, param in LAUNCH_PARAM_ARGS.items()
                if _given(context, arg) and takes_launch_arg(spec, arg)}
        params = node_parameter_files(spec, share, user_files=user_files, user_params=user, namespace=ns)
        remaps = [(k, _given(context, f"{k}_topic") or v if k in CAMERA_REMAPS else v)
                  for k, v in spec.remaps.items()]
        kw = dict(package="trace_anything_ros", executable=spec.executable, name=spec.name, namespace=ns,
                  parameters=params, remappings=remaps, output="screen")
        if not spec.lifecycle:
            actions.append(Node(**kw))
            continue
        node = LifecycleNode(**kw)
        configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                transition_id=Transition.TRANSITION_CONFIGURE))
        activate = RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                  transition_id=Transition.TRANSITION_ACTIVATE))]))
        actions += [node, activate, configure]
    return actions


def generate(graph_name: str) -> LaunchDescription:
    args = [DeclareLaunchArgument(name, default_value="", description=desc) for name, desc in ARGS.items()]
    args += [DeclareLaunchArgument(f"{k}_topic", default_value="", description=f"remap of '{k}' (empty: {v})")
             for k, v in CAMERA_REMAPS.items()]
    return LaunchDescription(args + [OpaqueFunction(function=_nodes, args=[graph_name])])
