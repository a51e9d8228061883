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

"""ros2 launch trace_anything_ros manipulation.launch.py [namespace:=...] [params_file:=...] [use_sim_time:=...]
[device:=cuda] [weights:=/path/trace_anything.pt] [image_topic:=...] [camera_info_topic:=...] [depth_topic:=...]
[camera_pose_topic:=...]

Starts the 'manipulation' graph (sim camera + perception + planner) of trace_anything_ros/ros/graph.py (the same nodes,
parameter files and remaps as
`trace-anything-ros run --graph manipulation`) and configures + activates the lifecycle nodes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _graph_launch import generate  # noqa: E402


def generate_launch_description():
    return generate("manipulation")
