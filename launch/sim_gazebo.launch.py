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

"""ros2 launch trace_anything_ros sim_gazebo.launch.py [world:=...] [bridge_config:=...] [headless:=true]
[gazebo:=false] [weights:=...] [device:=...] [params_file:=...] [namespace:=...] [*_topic:=...]

Gazebo Harmonic (``gz sim``) with worlds/tabletop.sdf (an RGB-D camera over a table with a spinning turntable),
``ros_gz_bridge parameter_bridge`` with config/gz_bridge.yaml (/clock, /camera/image_raw, /camera/depth/image_raw,
/camera/camera_info) and the 'gazebo' graph of trace_anything_ros/ros/graph.py (the perception node on sim time
with depth on; the same as `trace-anything-ros run --graph gazebo`), configured + activated.
Needs a ROS 2 install with ros_gz. ``gazebo:=false`` starts only the perception part (for another simulator or a
bag publishing the same topics and /clock; the launch test uses the project's sim camera).
"""
import os
import sys

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, GroupAction
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _graph_launch import generate  # noqa: E402


def generate_launch_description():
    share = get_package_share_directory("trace_anything_ros")
    world = LaunchConfiguration("world")
    bridge_config = LaunchConfiguration("bridge_config")
    gazebo = LaunchConfiguration("gazebo")
    headless = LaunchConfiguration("headless")
    gz = GroupAction(condition=IfCondition(gazebo), actions=[
        ExecuteProcess(cmd=["gz", "sim", "-r", world], output="screen", condition=UnlessCondition(headless)),
        ExecuteProcess(cmd=["gz", "sim", "-r", "-s", world], output="screen", condition=IfCondition(headless)),
        Node(package="ros_gz_bridge", executable="parameter_bridge", name="gz_bridge", output="screen",
             parameters=[{"config_file": bridge_config, "use_sim_time": True}]),
    ])
    # the 'gazebo' graph: perception with sim time and depth (its launch arguments are declared there)
    perception = generate("gazebo")
    return LaunchDescription([
        DeclareLaunchArgument("world", default_value=os.path.join(share, "worlds", "tabletop.sdf"),
                              description="SDF world for gz sim"),
        DeclareLaunchArgument("bridge_config", default_value=os.path.join(share, "config", "gz_bridge.yaml"),
                              description="ros_gz_bridge YAML"),
        DeclareLaunchArgument("headless", default_value="false", description="run gz sim server only (-s)"),
        DeclareLaunchArgument("gazebo", default_value="true",
                              description="start gz sim and the bridge (false: only the perception graph)"),
        gz,
        *perception.entities,
    ])
