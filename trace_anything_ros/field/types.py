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

"""The trajectory field of one window: the single data type shared by model, motion, planning, sim and ROS."""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Optional

import numpy as np


@dataclass
class TrajectoryField:
    """Per-pixel cubic B-spline trajectories of every frame of a window.

    Shapes (N frames, D control points, H x W pixels at the model's input resolution):
      ctrl_pts     [N, D, H, W, 3] float32  control points, window reference camera frame (frame 0's camera,
                                            x right, y down, z forward: the ROS optical-frame convention)
      ctrl_conf    [N, D, H, W]    float32  per-control-point confidence (>= 1 for the official model)
      frame_times  [N]             float32  normalised time of each frame on the curves (model-predicted or
                                            from stamps), in [0, 1]
      stamps       [N]             float64  ROS stamps of the frames in seconds (oldest first)
      intrinsics   [3, 3] or None           pinhole K of the field's pixel grid (already scaled to H x W)
      metric       bool                     True: metres; False: up to an unknown global scale
      frame_id     str                      the reference camera's optical frame id
    """

    ctrl_pts: np.ndarray
    ctrl_conf: np.ndarray
    frame_times: np.ndarray
    stamps: np.ndarray
    intrinsics: Optional[np.ndarray] = None
    metric: bool = False
    frame_id: str = ""
    extras: dict = dc_field(default_factory=dict)

    def __post_init__(self):
        n, d, h, w, c = self.ctrl_pts.shape
        if c != 3:
            raise ValueError(f"ctrl_pts must be [N, D, H, W, 3], got {self.ctrl_pts.shape}")
        if self.ctrl_conf.shape != (n, d, h, w):
            raise ValueError(f"ctrl_conf must be {(n, d, h, w)}, got {self.ctrl_conf.shape}")
        self.frame_times = np.asarray(self.frame_times, dtype=np.float32).reshape(n)
        self.stamps = np.asarray(self.stamps, dtype=np.float64).reshape(n)

    @property
    def num_frames(self) -> int:
        return self.ctrl_pts.shape[0]

    @property
    def num_ctrl(self) -> int:
        return self.ctrl_pts.shape[1]

    @property
    def height(self) -> int:
        return self.ctrl_pts.shape[2]

    @property
    def width(self) -> int:
        return self.ctrl_pts.shape[3]
