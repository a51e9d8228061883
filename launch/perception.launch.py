"""ros2 launch trace_anything_ros perception.launch.py [namespace:=...] [params_file:=...] [use_sim_time:=...]
[device:=cuda] [weights:=/path/trace_anything.pt] [image_topic:=...] [camera_info_topic:=...] [depth_topic:=...]
[camera_pose_topic:=...]

Starts the 'perception' graph of trace_anything_ros/ros/graph.py (the same nodes, parameter files and remaps as
`trace-anything-ros run --graph perception`) and configures + activates the lifecycle node.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _graph_launch import generate  # noqa: E402


def generate_launch_description():
    return generate("perception")
