"""The node graphs: one description read by both the launch files (launch/*.launch.py) and the runner
(`trace-anything-ros run --graph NAME`), so both start the same nodes with the same parameter files and remaps.

Kept free of rclpy and launch imports (the launch files import it inside a ROS 2 install, the runner here).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass(frozen=True)
class NodeSpec:
    name: str                      # node name (also the key in the parameter files)
    executable: str                # `ros2 run trace_anything_ros <executable>` (scripts/nodes/)
    module: str                    # `python -m <module>` (the runner)
    params: List[str] = field(default_factory=list)   # parameter files, relative to the package's config/
    remaps: Dict[str, str] = field(default_factory=dict)
    lifecycle: bool = False        # managed node: the runner / launch file drive configure -> activate


CAMERA_REMAPS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "depth": "/camera/depth/image_raw",
    "camera_pose": "/camera/pose",
}

PERCEPTION_NODE = NodeSpec(
    name="trajectory_field_node", executable="trajectory_field_node",
    module="trace_anything_ros.ros.trajectory_field_node", params=["perception.yaml"],
    remaps=dict(CAMERA_REMAPS), lifecycle=True)

SIM_CAMERA_NODE = NodeSpec(
    name="sim_camera_node", executable="sim_camera_node", module="trace_anything_ros.ros.sim_camera_node",
    params=["sim_camera.yaml"], remaps={})

PLANNER_NODE = NodeSpec(
    name="manipulation_planner_node", executable="manipulation_planner_node",
    module="trace_anything_ros.ros.manipulation_planner_node", params=["planner.yaml"],
    remaps={"tracks": "/trajectory_field_node/tracks",
            "dynamic_objects": "/trajectory_field_node/dynamic_objects",
            "image": CAMERA_REMAPS["image"]},
    lifecycle=True)

GRAPHS: Dict[str, List[NodeSpec]] = {
    # perception only: a camera (driver, bag, sim) publishes /camera/{image_raw,camera_info,depth/image_raw}
    "perception": [PERCEPTION_NODE],
    # the manipulation stack: simulated RGB-D camera + perception + goal-conditioned planner
    "manipulation": [SIM_CAMERA_NODE, PERCEPTION_NODE, PLANNER_NODE],
}


def graph(name: str) -> List[NodeSpec]:
    if name not in GRAPHS:
        raise KeyError(f"unknown graph {name!r} (known: {', '.join(GRAPHS)})")
    return GRAPHS[name]


def config_dir(share_dir: Optional[str] = None) -> str:
    """config/ of an installed package (share_dir) or of this checkout."""
    if share_dir:
        return os.path.join(share_dir, "config")
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "config")


def param_files(spec: NodeSpec, share_dir: Optional[str] = None) -> List[str]:
    d = config_dir(share_dir)
    return [os.path.join(d, p) for p in spec.params if os.path.exists(os.path.join(d, p))]
