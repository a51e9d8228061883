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

"""The one narrow interface between the perception node (or any offline pipeline) and a field estimator."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass
class FieldPrediction:
    """Raw network output for one window (no stamps, no scale): see field.types.TrajectoryField for shapes."""

    ctrl_pts: np.ndarray    # [N, D, H, W, 3] float32
    ctrl_conf: np.ndarray   # [N, D, H, W] float32
    frame_times: np.ndarray  # [N] float32, predicted normalised time of each frame
    metric: bool = False     # True: metres (an estimator that lifted measured depth); networks: up to scale
    # what the estimator measured about this window, carried into TrajectoryField.extras: e.g. 'regime',
    # 'camera' (static | moving | poses), 'motion_floor' (relative displacement its measured noise reaches)
    extras: dict = field(default_factory=dict)


@runtime_checkable
class FieldEstimator(Protocol):
    """Anything that turns a window of frames into a trajectory field.

    ``frames`` are uint8 RGB ``[N, H, W, 3]`` already at ``input_size`` (the node resizes once, on arrival).
    ``frame_keys`` optionally identify frames across overlapping windows so an engine may reuse per-frame work
    (encoder tokens) exactly. ``depth`` ([N, H, W] float32 metres, NaN where invalid) is optional side input; the
    official RGB-only network does not use it (metric scale is applied after, in field code). An estimator with a
    true ``needs_stamps`` attribute also receives ``stamps_ns`` (the frames' header stamps, int ns) from the
    pipeline: references that know the world, like the simulator's ground-truth oracle (``sim.oracle``), not
    models. One with a true ``needs_intrinsics`` attribute (the depth-aware compact model, ``model.geometry``) also
    receives ``intrinsics`` (3x3 on the input grid, or None), ``times`` (the frames' normalised stamps) and, where
    known, ``cam_poses`` ([N, 4, 4], each camera in the first one's frame).
    """

    input_size: tuple  # (H, W)
    num_ctrl: int

    def predict(self, frames: np.ndarray, frame_keys: Optional[Sequence] = None,
                depth: Optional[np.ndarray] = None) -> FieldPrediction: ...

    def close(self) -> None: ...
