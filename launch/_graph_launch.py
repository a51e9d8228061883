"""Shared by perception.launch.py and manipulation.launch.py: turn a graph of trace_anything_ros.ros.graph into
launch_ros actions (needs launch + launch_ros, i.e. a ROS 2 install; not importable in the pip venv)."""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from trace_anything_ros.ros.graph import CAMERA_REMAPS, graph, param_files


def generate(graph_name: str) -> LaunchDescription:
    share = get_package_share_directory("trace_anything_ros")
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perception.yaml"),
                              description="parameter file applied to every node after the graph's own files"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
        DeclareLaunchArgument("device", default_value="cpu", description="model.device of the perception node"),
        DeclareLaunchArgument("weights", default_value="", description="model.weights of the perception node"),
    ] + [DeclareLaunchArgument(f"{k}_topic", default_value=v, description=f"remap of '{k}'")
         for k, v in CAMERA_REMAPS.items()]
    actions = list(args)
    for spec in graph(graph_name):
        params = param_files(spec, share) + [LaunchConfiguration("params_file"),
                                             {"use_sim_time": LaunchConfiguration("use_sim_time")}]
        remaps = [(k, LaunchConfiguration(f"{k}_topic") if k in CAMERA_REMAPS else v) for k, v in spec.remaps.items()]
        if spec.lifecycle:
            params.append({"model.device": LaunchConfiguration("device"),
                           "model.weights": LaunchConfiguration("weights")})
            node = LifecycleNode(package="trace_anything_ros", executable=spec.executable, name=spec.name,
                                 namespace=LaunchConfiguration("namespace"), parameters=params, remappings=remaps,
                                 output="screen")
            actions.append(node)
            configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                    transition_id=Transition.TRANSITION_CONFIGURE))
            activate = RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                      transition_id=Transition.TRANSITION_ACTIVATE))]))
            actions += [activate, configure]
        else:
            actions.append(Node(package="trace_anything_ros", executable=spec.executable, name=spec.name,
                                namespace=LaunchConfiguration("namespace"), parameters=params, remappings=remaps,
                                output="screen"))
    return LaunchDescription(actions)
