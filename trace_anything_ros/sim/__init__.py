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

"""MuJoCo simulation with ground truth (ROS-free; the ROS camera node is trace_anything_ros.ros.sim_camera_node).

  from trace_anything_ros.sim.scene import Scene, SceneConfig          # procedural tabletop scenes
  from trace_anything_ros.sim.ground_truth import render_window        # frames + GroundTruthWindow

    scene = Scene(SceneConfig.from_preset("moving_camera", seed=3, width=320, height=240))
    frames, gt = render_window(scene, num_frames=8, dt=0.1, start=1.0)
    gt.field            # TrajectoryField (metric, reference camera = frame 0, ROS optical convention)
    gt.dynamic_mask, gt.instance_ids, gt.visibility, gt.positions

Submodules are not imported here so that ``import trace_anything_ros.sim`` does not load MuJoCo.
"""
