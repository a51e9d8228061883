"""ros2 launch trace_anything_ros sim_gazebo.launch.py [world:=...] [bridge_config:=...] [headless:=true]

Gazebo Harmonic (``gz sim``) with worlds/tabletop.sdf (an RGB-D camera over a table with a spinning turntable),
``ros_gz_bridge parameter_bridge`` with config/gz_bridge.yaml (/clock, /camera/image_raw, /camera/depth/image_raw,
/camera/camera_info) and the perception graph (perception.launch.py) with use_sim_time:=true and depth enabled.
Needs a ROS 2 install with ros_gz; not runnable in the pip venv.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("trace_anything_ros")
    world = LaunchConfiguration("world")
    bridge_config = LaunchConfiguration("bridge_config")
    return LaunchDescription([
        DeclareLaunchArgument("world", default_value=os.path.join(share, "worlds", "tabletop.sdf"),
                              description="SDF world for gz sim"),
        DeclareLaunchArgument("bridge_config", default_value=os.path.join(share, "config", "gz_bridge.yaml"),
                              description="ros_gz_bridge YAML"),
        DeclareLaunchArgument("headless", default_value="false", description="run gz sim server only (-s)"),
        ExecuteProcess(cmd=["gz", "sim", "-r", world], output="screen",
                       condition=UnlessCondition(LaunchConfiguration("headless"))),
        ExecuteProcess(cmd=["gz", "sim", "-r", "-s", world], output="screen",
                       condition=IfCondition(LaunchConfiguration("headless"))),
        Node(package="ros_gz_bridge", executable="parameter_bridge", name="gz_bridge", output="screen",
             parameters=[{"config_file": bridge_config, "use_sim_time": True}]),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, "launch", "perception.launch.py")),
            launch_arguments={"use_sim_time": "true"}.items()),
    ])
