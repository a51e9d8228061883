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
