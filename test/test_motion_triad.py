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

"""The closed-form 3-point motions behind the RANSAC hypotheses (motion.objects._three_point_motions)."""
import numpy as np

from trace_anything_ros.field import rigid
from trace_anything_ros.motion.objects import _three_point_motions


def _rot(rng, n):
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)


def test_recovers_exact_rigid_motions_like_kabsch():
    rng = np.random.default_rng(0)
    P, T = 50, 4
    src = rng.normal(size=(P, 3, 3)) + np.array([0, 0, 2.0])
    R_true = _rot(rng, P * T).reshape(P, T, 3, 3)
    t_true = rng.normal(size=(P, T, 3))
    dst = np.einsum("ptij,pmj->ptmi", R_true, src) + t_true[:, :, None]
    R, t = _three_point_motions(src, dst)
    np.testing.assert_allclose(R, R_true, atol=1e-9)
    np.testing.assert_allclose(t, t_true, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    Rk, tk = rigid.kabsch(np.broadcast_to(src[:, None], dst.shape), dst)
    np.testing.assert_allclose(R, Rk, atol=1e-8)


def test_degenerate_triples_give_identity_not_nan():
    src = np.array([[[0, 0, 1.0], [0, 0, 1.0], [0, 0, 1.0]],      # coincident
                    [[0, 0, 1.0], [1, 0, 1.0], [2, 0, 1.0]]])     # collinear
    dst = src[:, None] + np.array([0.1, 0, 0])
    R, t = _three_point_motions(src, dst)
    assert np.isfinite(R).all() and np.isfinite(t).all()
    np.testing.assert_allclose(R, np.broadcast_to(np.eye(3), R.shape))
