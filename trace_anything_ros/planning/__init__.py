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

"""Goal-conditioned manipulation planning (ROS-free): object SE(3) motion from trajectory fields, a heuristic
grasp, the end-effector path and its timing under limits.

Main entry points: ``ManipulationPlanner`` / ``PlannerParams`` / ``Plan`` / ``PlanStatus`` (planner),
``ObjectSelection`` (object_motion), ``fit_rigid`` / ``fit_rigid_sequence`` (kabsch), ``se3`` helpers.
"""
from .kabsch import FitParams, RigidFit, fit_rigid, fit_rigid_pairs, fit_rigid_sequence, weighted_kabsch
from .object_motion import ObjectMotion, ObjectSelection, motion_from_goal_field, object_pose_history
from .path import EEPath, Limits, check_workspace, limit_violations, time_parameterize
from .planner import ManipulationPlanner, Plan, PlannerParams, PlanStatus

__all__ = [
    "FitParams", "RigidFit", "fit_rigid", "fit_rigid_pairs", "fit_rigid_sequence", "weighted_kabsch",
    "ObjectMotion", "ObjectSelection", "motion_from_goal_field", "object_pose_history",
    "EEPath", "Limits", "check_workspace", "limit_violations", "time_parameterize",
    "ManipulationPlanner", "Plan", "PlannerParams", "PlanStatus",
]
