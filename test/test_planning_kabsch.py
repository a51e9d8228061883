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

"""Robust weighted Kabsch: accuracy under noise + outliers, weights, degenerate fallbacks, sequences, SE(3)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trace_anything_ros.planning import se3
from trace_anything_ros.planning.kabsch import (FitParams, fit_rigid, fit_rigid_pairs, fit_rigid_sequence,
                                                weighted_kabsch)


def _case(seed, M=300, noise=0.001, outlier_ratio=0.3, extent=0.05):
    r = np.random.default_rng(seed)
    P = r.uniform(-extent, extent, size=(M, 3)) + r.normal(size=3) * 0.3 + [0, 0, 1.0]
    R = Rotation.random(random_state=seed).as_matrix()
    t = r.normal(size=3) * 0.2
    Q = P @ R.T + t + r.normal(size=(M, 3)) * noise
    out = r.random(M) < outlier_ratio
    Q[out] += r.uniform(0.03, 0.3, size=(out.sum(), 3)) * r.choice([-1, 1], size=(out.sum(), 3))
    return P, Q, R, t, out


@pytest.mark.parametrize("seed", range(20))
def test_noise_and_outliers_accuracy(seed):
    P, Q, R, t, out = _case(seed)
    fit = fit_rigid(P, Q)
    assert fit.ok, fit.reason
    assert not fit.used_fallback
    rot_err = np.degrees(se3.rotation_error(R, fit.R))
    # Translation error measured at the object (its centroid), not at the camera origin ~1 m away, where a
    # 0.1 deg rotation error alone would move the point by ~2 mm.
    c = P.mean(0)
    trans_err = np.linalg.norm((fit.R @ c + fit.t) - (R @ c + t))
    assert rot_err < 1.0
    assert trans_err < 0.002
    # The outliers are found: inlier ratio close to the true one, outliers flagged.
    assert abs(fit.inlier_ratio - (1 - out.mean())) < 0.05
    assert fit.inliers[out].mean() < 0.05
    assert fit.rms < 0.003


def test_plain_least_squares_is_biased_by_outliers():
    """Guards the test above: without RANSAC the same data fails the thresholds (so they mean something)."""
    P, Q, R, t, out = _case(3)
    R_ls, t_ls = weighted_kabsch(P, Q)
    assert np.degrees(se3.rotation_error(R, R_ls)) > 1.0 or np.linalg.norm(t_ls - t) > 0.002


def test_weighted_kabsch_exact_and_weights():
    r = np.random.default_rng(0)
    P = r.normal(size=(50, 3))
    R = Rotation.random(random_state=1).as_matrix()
    t = np.array([0.1, -0.2, 0.3])
    Q = P @ R.T + t
    Q_bad = Q.copy()
    Q_bad[:10] += 5.0
    w = np.ones(50)
    w[:10] = 0.0  # zero weight: corrupted points are ignored exactly
    R2, t2 = weighted_kabsch(P, Q_bad, w)
    assert np.allclose(R2, R, atol=1e-9) and np.allclose(t2, t, atol=1e-9)
    assert np.isclose(np.linalg.det(R2), 1.0)
    # Reflection is never returned: mirrored data still gives a proper rotation.
    R3, _ = weighted_kabsch(P, P * [1, 1, -1])
    assert np.isclose(np.linalg.det(R3), 1.0)


def test_collinear_points_use_translation_fallback():
    r = np.random.default_rng(1)
    s = r.uniform(-0.1, 0.1, size=100)
    P = np.stack([s, 2 * s, -s], axis=1) + [0.2, 0.1, 1.0]
    t = np.array([0.05, -0.02, 0.01])
    Q = P + t + r.normal(size=P.shape) * 0.0005
    fit = fit_rigid(P, Q)
    assert fit.used_fallback
    assert "degenerate" in fit.reason
    assert np.allclose(fit.R, np.eye(3))
    assert np.linalg.norm(fit.t - t) < 0.001
    assert fit.ok


def test_too_few_points_use_fallback_and_empty_fails():
    P = np.array([[0.0, 0, 1], [0.1, 0, 1]])
    t = np.array([0.01, 0.02, 0.03])
    fit = fit_rigid(P, P + t)
    assert fit.used_fallback and "usable points" in fit.reason
    assert np.allclose(fit.t, t)
    empty = fit_rigid(np.zeros((0, 3)), np.zeros((0, 3)))
    assert not empty.ok and "no usable points" in empty.reason
    nan = fit_rigid(np.full((20, 3), np.nan), np.full((20, 3), np.nan))
    assert not nan.ok


def test_gating_rejects_non_rigid_motion():
    r = np.random.default_rng(2)
    P = r.uniform(-0.05, 0.05, size=(200, 3))
    Q = P + r.normal(size=P.shape) * 0.05  # no rigid motion explains this
    fit = fit_rigid(P, Q)
    assert not fit.ok
    assert "inlier ratio" in fit.reason


def test_nan_points_are_ignored():
    P, Q, R, t, _ = _case(5, outlier_ratio=0.0)
    Q[:20] = np.nan
    fit = fit_rigid(P, Q)
    assert fit.ok
    assert np.degrees(se3.rotation_error(R, fit.R)) < 1.0
    assert not fit.inliers[:20].any()


def test_sequence_recovers_each_frame():
    r = np.random.default_rng(7)
    M, T = 400, 8
    P = r.uniform(-0.04, 0.04, size=(M, 3)) + [0.1, 0.0, 0.8]
    truth = [se3.make_pose(Rotation.from_rotvec([0.02 * k, 0.05 * k, 0.1 * k]).as_matrix(), [0.01 * k, 0, -0.005 * k])
             for k in range(T)]
    pts = np.stack([se3.transform_points(Tk, P) for Tk in truth]) + r.normal(size=(T, M, 3)) * 0.001
    w = np.ones((T, M))
    bad = r.random((T, M)) < 0.2
    pts[bad] += r.uniform(0.05, 0.2, size=(bad.sum(), 3))
    fits = fit_rigid_sequence(pts, w)
    assert len(fits) == T
    assert np.allclose(fits[0].T, np.eye(4))
    for k in range(1, T):
        assert fits[k].ok, fits[k].reason
        assert np.degrees(se3.rotation_error(truth[k][:3, :3], fits[k].R)) < 1.0
        c = P.mean(0)
        assert np.linalg.norm(se3.transform_points(fits[k].T, c) - se3.transform_points(truth[k], c)) < 0.002


def test_params_validation():
    with pytest.raises(ValueError):
        FitParams(inlier_threshold=0).validate()
    with pytest.raises(ValueError):
        FitParams(min_inlier_ratio=1.5).validate()
    with pytest.raises(ValueError):
        fit_rigid_pairs(np.zeros((5, 3)), np.zeros((2, 4, 3)))


def test_se3_helpers_roundtrip():
    r = np.random.default_rng(3)
    q = Rotation.random(random_state=4).as_quat()
    T = se3.pose_from_xyz_quat([1, 2, 3], q)
    xyz, q2 = se3.pose_to_xyz_quat(T)
    assert np.allclose(xyz, [1, 2, 3])
    assert np.isclose(abs(q @ q2), 1.0)  # same rotation (q and -q)
    assert q2[3] >= 0
    assert np.allclose(se3.compose(T, se3.invert(T)), np.eye(4), atol=1e-12)
    p = r.normal(size=(7, 3))
    assert np.allclose(se3.transform_points(se3.invert(T), se3.transform_points(T, p)), p)
    R = Rotation.from_rotvec([0, 0, 0.3]).as_matrix()
    assert np.isclose(se3.rotation_angle(R), 0.3)
    assert np.isclose(se3.rotation_angle(np.eye(3)), 0.0)
    mid = se3.interpolate_poses(np.eye(4), se3.make_pose(R, [1, 0, 0]), [0.5])[0]
    assert np.isclose(se3.rotation_angle(mid[:3, :3]), 0.15) and np.allclose(mid[:3, 3], [0.5, 0, 0])
