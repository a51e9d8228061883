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

"""Field math: basis properties, evaluation, derivatives, fit, resample, arc length, torch parity, metric scale."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from trace_anything_ros.field import basis
from trace_anything_ros.field.evaluate import (apply_basis, arc_length, evaluate_curves, evaluate_torch,
                                               field_positions, tracks_at_frame_times, velocity)
from trace_anything_ros.field.fit import fit_control_points, resample, resample_matrix
from trace_anything_ros.field.scale import apply_scale, metric_scale_from_depth
from trace_anything_ros.field.types import TrajectoryField

D_CHOICES = st.sampled_from([4, 7, 10, 13])
times = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
finite = st.floats(min_value=-100, max_value=100, allow_nan=False, width=64)


def ctrl_strategy(D):
    return arrays(np.float64, (D, 3), elements=finite)


@settings(max_examples=60, deadline=None)
@given(D=D_CHOICES, t=st.lists(st.floats(-2, 3, allow_nan=False), min_size=1, max_size=20))
def test_partition_of_unity_and_clamping(D, t):
    B = basis.basis_matrix(t, D)
    assert np.allclose(B.sum(-1), 1.0)
    assert np.all(B >= -1e-12)
    # t outside [0, 1] is clamped: same rows as the clamped times
    assert np.allclose(B, basis.basis_matrix(np.clip(t, 0, 1), D))
    for order in (1, 2):
        assert np.allclose(basis.basis_derivative_matrix(t, D, order).sum(-1), 0.0, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(D=D_CHOICES, data=st.data())
def test_c0_continuity_at_segment_joints(D, data):
    P = data.draw(ctrl_strategy(D))
    S = basis.num_segments(D)
    eps = 1e-9
    for j in range(1, S):
        tj = j / S
        left, right = evaluate_curves(P, [tj - eps, tj + eps])
        assert np.allclose(left, right, atol=1e-5 * (1 + np.abs(P).max()))
        # the joint interpolates its control point (triple interior knots)
        assert np.allclose(evaluate_curves(P, [tj])[0], P[3 * j])


@settings(max_examples=40, deadline=None)
@given(D=D_CHOICES, data=st.data())
def test_evaluate_fit_round_trip(D, data):
    P = data.draw(ctrl_strategy(D))
    S = basis.num_segments(D)
    t = np.linspace(0, 1, 4 * S + 1)  # >= 4 samples per segment: fit is exact
    x = evaluate_curves(P, t)
    P2 = fit_control_points(t, x, D)
    scale = 1 + np.abs(P).max()
    assert np.allclose(P2, P, atol=1e-5 * scale)
    assert np.allclose(evaluate_curves(P2, t), x, atol=1e-5 * scale)


@settings(max_examples=40, deadline=None)
@given(D=D_CHOICES, order=st.sampled_from([1, 2]), data=st.data())
def test_extrapolation_continuity_at_one(D, order, data):
    P = data.draw(ctrl_strategy(D))
    scale = 1 + np.abs(P).max()
    eps = 1e-7
    inside, at1, outside = evaluate_curves(P, [1 - eps, 1.0, 1 + eps], extrapolate=order)
    assert np.allclose(at1, P[-1])
    assert np.allclose(inside, outside, atol=1e-4 * scale)
    v_in, v_out = evaluate_curves(P, [1 - eps, 1 + eps], deriv=1, extrapolate=order)
    assert np.allclose(v_in, v_out, atol=1e-3 * scale * D)
    # explicit extrapolation is not clamping: past 1 it follows the end tangent
    far = evaluate_curves(P, [1.5], extrapolate=1)[0]
    v1 = evaluate_curves(P, [1.0], deriv=1)[0]
    assert np.allclose(far, P[-1] + 0.5 * v1, atol=1e-6 * scale * D)
    assert np.allclose(evaluate_curves(P, [1.5])[0], P[-1])  # plain evaluation clamps


def test_extrapolated_basis_matches_inside():
    t = np.linspace(0, 1, 23)
    for D in (4, 7, 10):
        assert np.allclose(basis.basis_matrix_extrapolated(t, D, order=2), basis.basis_matrix(t, D))
        assert np.allclose(basis.basis_matrix_extrapolated(t, D, order=2, deriv=1),
                           basis.basis_derivative_matrix(t, D, 1))
        assert np.allclose(basis.basis_matrix_extrapolated([-0.5, 1.7], D, order=1).sum(-1), 1.0)


def test_derivatives_match_finite_differences_and_velocity_units():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(10, 5, 3))
    t = np.array([0.1, 0.3, 0.5, 0.77, 0.95])
    h = 1e-6
    fd = (evaluate_curves(P, t + h) - evaluate_curves(P, t - h)) / (2 * h)
    assert np.allclose(evaluate_curves(P, t, deriv=1), fd, atol=1e-4)
    fd2 = (evaluate_curves(P, t + 1e-4, deriv=1) - evaluate_curves(P, t - 1e-4, deriv=1)) / 2e-4
    assert np.allclose(evaluate_curves(P, t, deriv=2), fd2, atol=1e-3)
    # a point moving 2 m over normalised [0, 1] with a 4 s window: 0.5 m/s
    line = np.linspace(0, 1, 10)[:, None] * np.array([2.0, 0.0, 0.0])
    v = velocity(line, [0.5], rate=1 / 4.0)
    assert np.allclose(v[0], [0.5, 0.0, 0.0])


def test_apply_basis_batched_layouts_agree():
    rng = np.random.default_rng(1)
    ctrl = rng.normal(size=(3, 7, 4, 5, 3)).astype(np.float32)
    B = basis.basis_matrix([0.0, 0.4, 1.0], 7)
    ref = np.einsum("td,ndhwc->nthwc", B, ctrl.astype(np.float64))
    assert np.allclose(apply_basis(B, ctrl, 1), ref, atol=1e-5)
    sparse = rng.normal(size=(100, 7, 3))  # many short curves: the transposed GEMM path
    assert np.allclose(apply_basis(B, sparse, 1), np.einsum("td,pdc->ptc", B, sparse))


def test_arc_length_of_known_curves():
    # straight line with uneven control points: length = distance between ends
    P = np.array([[0, 0, 0], [1, 0, 0], [1.5, 0, 0], [3, 0, 0], [3.5, 0, 0], [3.8, 0, 0], [4, 0, 0]], float)
    assert np.isclose(arc_length(P), 4.0, rtol=1e-6)
    assert np.isclose(arc_length(P, 0.0, 0.5), np.linalg.norm(evaluate_curves(P, [0.5])[0]), rtol=1e-6)
    # quarter circle fitted by the spline: length ~ pi/2
    t = np.linspace(0, 1, 200)
    circ = np.stack([np.cos(t * np.pi / 2), np.sin(t * np.pi / 2), 0 * t], -1)
    Pc = fit_control_points(t, circ, 10)
    assert abs(arc_length(Pc) - np.pi / 2) < 1e-3
    # batched field layout [N, D, H, W, 3] -> [N, H, W]
    field = np.broadcast_to(P[None, :, None, None, :], (2, 7, 3, 4, 3))
    assert np.allclose(arc_length(field, d_axis=1), 4.0)


def test_fit_weights_and_nans():
    rng = np.random.default_rng(2)
    P = rng.normal(size=(7, 3))
    t = np.linspace(0, 1, 30)
    x = evaluate_curves(P, t)
    bad = x.copy()
    bad[5] += 100.0  # an outlier sample
    w = np.ones(30)
    w[5] = 0.0
    assert np.allclose(fit_control_points(t, bad, 7, weights=w), P, atol=1e-6)
    assert not np.allclose(fit_control_points(t, bad, 7), P, atol=1e-2)
    nan = x.copy()
    nan[7] = np.nan
    assert np.allclose(fit_control_points(t, nan, 7), P, atol=1e-6)
    # per-curve weights on [T, M, 3] with t_axis 0
    xs = np.stack([x, x + 1.0], 1)  # [T, 2, 3]
    wm = np.ones((30, 2))
    P2 = fit_control_points(t, xs, 7, weights=wm)
    assert np.allclose(P2[:, 0], P, atol=1e-6) and np.allclose(P2[:, 1], P + 1.0, atol=1e-6)
    # fewer samples than control points stays finite and interpolates
    few = fit_control_points([0.0, 1.0], x[[0, -1]], 10)
    assert np.all(np.isfinite(few))
    assert np.allclose(evaluate_curves(few, [0.0, 1.0]), x[[0, -1]], atol=1e-4)


@pytest.mark.parametrize("d_in,d_out,exact", [(4, 7, True), (4, 10, True), (7, 13, True), (10, 10, True),
                                              (10, 7, False), (10, 4, False), (7, 10, False)])
def test_resample(d_in, d_out, exact):
    rng = np.random.default_rng(d_in * 100 + d_out)
    P = rng.normal(size=(d_in, 3))
    Q = resample(P, d_out)
    assert Q.shape == (d_out, 3)
    t = np.linspace(0, 1, 101)
    err = np.abs(evaluate_curves(Q, t) - evaluate_curves(P, t)).max()
    if exact:
        assert err < 1e-8
    else:
        # an approximation: close for a smooth motion (a thrown object's arc with some spin)
        ts = np.linspace(0, 1, 50)
        smooth = np.stack([0.5 * ts, 0.3 * ts - 0.4 * ts**2, 1.0 + 0.1 * np.sin(2 * ts)], -1)
        Ps = fit_control_points(ts, smooth, d_in)
        assert np.abs(evaluate_curves(resample(Ps, d_out), t) - evaluate_curves(Ps, t)).max() < 2e-3
        # the (end-point constrained) L2 projection beats interpolating a few samples
        coarse = fit_control_points(np.linspace(0, 1, d_out), evaluate_curves(P, np.linspace(0, 1, d_out)), d_out)
        l2 = lambda C: np.mean((evaluate_curves(C, t) - evaluate_curves(P, t)) ** 2)  # noqa: E731
        assert l2(Q) <= l2(coarse) + 1e-12
    # endpoints are preserved (clamped splines)
    assert np.allclose(Q[0], P[0], atol=1e-8) and np.allclose(Q[-1], P[-1], atol=1e-8)
    assert resample_matrix(d_in, d_out).shape == (d_out, d_in)


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch", reason="torch is a core dependency; it must import")
    rng = np.random.default_rng(3)
    ctrl = rng.normal(size=(2, 10, 4, 6, 3)).astype(np.float32)
    t = np.array([0.0, 0.21, 0.5, 0.99, 1.0, 1.3], np.float32)
    out_t = evaluate_torch(torch.from_numpy(ctrl), torch.from_numpy(t), d_axis=1).numpy()
    assert np.allclose(out_t, evaluate_curves(ctrl, t, d_axis=1), atol=1e-5)


def _field(ctrl, conf=None, times=None):
    N, D = ctrl.shape[:2]
    conf = np.ones(ctrl.shape[:-1], np.float32) if conf is None else conf
    times = np.linspace(0, 1, N) if times is None else times
    return TrajectoryField(ctrl.astype(np.float32), conf.astype(np.float32), times, 10.0 + np.arange(N) * 0.1)


def test_field_level_helpers_and_metric_scale():
    rng = np.random.default_rng(4)
    N, D, H, W = 3, 7, 8, 9
    ctrl = rng.uniform(1, 3, size=(N, D, H, W, 3))
    f = _field(ctrl)
    pos = field_positions(f, [0.0, 1.0])
    assert pos.shape == (N, 2, H, W, 3)
    tr, cf = tracks_at_frame_times(f)
    assert tr.shape == (N, N, H, W, 3) and cf.shape == (N, N, H, W)
    # depth = 2.5 * z of each frame's own pixels at its own time, with junk that must be ignored
    z = np.stack([evaluate_curves(ctrl[i], [f.frame_times[i]])[0][..., 2] for i in range(N)])
    depth = 2.5 * z
    depth[0, 0, :] = np.nan
    depth[1, 1, :] = 0.0
    depth[2, 2, :3] = 1e6  # a few wild outliers: the median ignores them
    est = metric_scale_from_depth(f, depth, frames=[0, 1, 2])
    assert est.ok and abs(est.scale - 2.5) < 1e-4
    assert set(est.per_frame) == {0, 1, 2}
    # without poses only frame 0 is used (the field lives in frame 0's camera)
    assert set(metric_scale_from_depth(f, depth).per_frame) == {0}
    # a zero-confidence frame-0 region does not vote
    conf = np.ones(ctrl.shape[:-1])
    conf[0, :, :4] = 0.0
    d2 = depth.copy()
    d2[0, :4] = 100.0
    assert abs(metric_scale_from_depth(_field(ctrl, conf), d2).scale - 2.5) < 1e-4
    # nothing valid -> not ok
    assert not metric_scale_from_depth(f, np.full((H, W), np.nan)).ok
    g = apply_scale(f, 2.0)
    assert g.metric and np.allclose(g.ctrl_pts, 2 * f.ctrl_pts)
    with pytest.raises(ValueError):
        apply_scale(f, -1.0)
