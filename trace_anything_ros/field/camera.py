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

"""Pinhole camera helpers shared by the simulator's ground truth and the depth-aware model inputs."""
from __future__ import annotations

import numpy as np


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Metric z-depth [H, W] -> camera-frame points [H, W, 3] (optical convention)."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return backproject_at(u, v, depth, K)


def backproject_at(u: np.ndarray, v: np.ndarray, z: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``u, v`` with z-depth ``z`` (same shapes) -> camera-frame points ``[..., 3]``."""
    z = np.asarray(z, dtype=np.float64)
    return np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=-1)


def project(points: np.ndarray, K: np.ndarray):
    """Camera-frame points [..., 3] -> pixel coordinates [..., 2] (u, v) and z [...]."""
    z = points[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * points[..., 0] / z + K[0, 2]
        v = K[1, 1] * points[..., 1] / z + K[1, 2]
    return np.stack([u, v], axis=-1), z


def default_intrinsics(H: int, W: int, fov_scale: float = 0.9) -> np.ndarray:
    """A plausible K for a camera without camera_info: focal ``fov_scale * max(H, W)``, principal point centred."""
    f = fov_scale * max(H, W)
    return np.array([[f, 0, W / 2.0], [0, f, H / 2.0], [0, 0, 1.0]])
