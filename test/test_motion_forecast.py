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

"""Object motion models fitted over a stream's history (motion/forecast.py): constant-velocity, accelerating and
stopping objects, new objects, shrinkage, rotation, calibrated confidence, frame alignment, tracker histories."""
import numpy as np
import pytest

from trace_anything_ros.field.rigid import so3_exp
from trace_anything_ros.motion.forecast import (ForecastParams, ObjectMotion, confidence, fit_motion, forecast_points,
                                                frame_alignment, maxwell_cdf, near_objects, similarity,
                                                support_floors)
from trace_anything_ros.motion.objects import DynamicObject, ObjectTracker

DT = 0.1  # 10 Hz, as the node's windows
CV = dict(damping_s=np.inf, accel_gain=0.0)  # plain constant velocity (the defaults turn with the acceleration)
FIT = dict(CV, tail_velocity=False)  # the history fit's own velocity (the default uses the newest window's last step)
# the backtest option as it was measured (ForecastParams doc; then the velocity was the last frame step: tail_order 1)
BT = dict(backtest=True, damping_s=2.0, shrink=4.0, tail_order=1)


def _samples(pos_fn, t_end=2.0, span=1.0, noise=0.0, seed=0, windows=True):
    """Centroid samples as the tracker collects them: overlapping windows of 4 frames, a window every 2 frames,
    each window's samples with their own noise (repeated stamps)."""
    rng = np.random.default_rng(seed)
    stamps = np.round(np.arange(t_end - span, t_end + 1e-9, DT), 6)
    S, C = [], []
    ends = sorted(range(len(stamps) - 1, 2, -2)) if windows else [len(stamps) - 1]
    for e in ends:
        st = stamps[max(0, e - 3):e + 1]
        S.append(st)
        C.append(np.stack([pos_fn(t) for t in st]) + rng.normal(0, noise, (len(st), 3)))
    return np.concatenate(S), np.concatenate(C), float(stamps[-1])


def test_constant_velocity_object_is_forecast_exactly_and_confidence_falls_with_lead():
    v = np.array([0.2, -0.1, 0.05])
    p0 = np.array([0.1, 0.0, 1.0])
    s, c, t = _samples(lambda t: p0 + v * t)
    m = fit_motion(s, c, t, params=ForecastParams(**CV))
    assert np.allclose(m.velocity, v, atol=1e-6) and m.sigma0 < 1e-6
    lead = np.array([0.2, 0.5, 1.0])
    fc = m.centroid + m.displacement(lead)
    assert np.allclose(fc, p0 + v * (t + lead[:, None]), atol=1e-5)
    sig = m.sigma(lead)
    conf = confidence(sig, m.centroid[2], 0.05)
    assert np.all(np.diff(sig) > 0) and np.all(np.diff(conf) < 0)          # honest: less sure further ahead
    assert 0.0 < conf[-1] < conf[0] <= 1.0


def test_predicted_sigma_brackets_the_error_on_noisy_constant_velocity_objects():
    """Calibration (Monte Carlo over noise draws and velocities): the 90 % radius of the predicted sigma contains
    the true error in about 90 % of cases, and the confidence matches the hit rate within its tolerance. (Here
    without the acceleration floor, which covers the unmodelled acceleration of real objects: these have none.)"""
    rng = np.random.default_rng(3)
    errs, sigs, confs, hits = [], [], [], []
    lead = np.array([0.5, 1.0])
    for k in range(200):
        v = rng.normal(0, 0.15, 3)
        p0 = np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.1, 3)
        s, c, t = _samples(lambda t: p0 + v * t, noise=0.004, seed=k)
        now = p0 + v * t + rng.normal(0, 0.004, 3)
        m = fit_motion(s, c, t, centroid=now, params=ForecastParams(accel_floor=0.0, **CV))
        pred = now + m.displacement(lead)
        true = p0 + v * (t + lead[:, None])
        e = np.linalg.norm(pred - true, axis=1)
        sg = m.sigma(lead)
        errs.append(e), sigs.append(sg)
        confs.append(confidence(sg, now[2], 0.02)), hits.append(e < 0.02 * now[2])
    errs, sigs, confs, hits = map(np.array, (errs, sigs, confs, hits))
    cover = (errs <= 1.443 * sigs).mean(axis=0)
    assert np.all(cover > 0.85), cover                                        # brackets the error ...
    ratio = np.median(errs / sigs, axis=0)
    assert np.all((ratio > 0.6) & (ratio < 1.2)), ratio                      # ... without being vacuous (0.89 ideal)
    assert np.all(np.abs(confs.mean(0) - hits.mean(0)) < 0.15), (confs.mean(0), hits.mean(0))


def test_accelerating_object_quadratic_fit_lags_less_than_a_line():
    a = np.array([0.0, 0.4, 0.0])
    s, c, t = _samples(lambda t: 0.5 * a * t * t + np.array([0, 0, 1.0]))
    v_true = a * t
    lead = np.array([0.5])
    true = 0.5 * a * (t + 0.5) ** 2 + np.array([0, 0, 1.0])
    now = 0.5 * a * t * t + np.array([0, 0, 1.0])
    errs = {}
    for deg in (1, 2):
        m = fit_motion(s, c, t, centroid=now, params=ForecastParams(degree=deg, recency_s=np.inf, history_s=1.0,
                                                                    **FIT))
        errs[deg] = float(np.linalg.norm(now + m.displacement(lead)[0] - true))
        if deg == 2:
            assert np.allclose(m.velocity, v_true, atol=1e-6)                 # the slope at the newest frame
    hold = float(np.linalg.norm(now - true))
    assert errs[2] < 0.5 * errs[1] < 0.5 * hold
    # the unmodelled acceleration shows in the predicted error: larger than for a constant-velocity object
    m2 = fit_motion(s, c, t, centroid=now)
    s0, c0, _ = _samples(lambda t: np.array([0, 0, 1.0]) + np.array([0.0, 0.4, 0.0]) * t)
    assert m2.sigma([1.0])[0] > fit_motion(s0, c0, t).sigma([1.0])[0]
    # the defaults take the velocity from the newest window's last samples and turn with the acceleration's normal
    # part: none on a straight line, so the tangential acceleration is not extrapolated; undamped, that lags less
    # than the line (damped, as by default, it lags about as much: the damping hedges against reversals)
    assert np.linalg.norm(m2.acceleration - a) < 1e-6 and m2.turn_rate() < 1e-6
    # second-order backward difference (tail_order 2, the default): the slope at the newest frame, no lag; the last
    # frame step alone (tail_order 1) is the velocity half a step earlier
    assert np.allclose(m2.velocity, a * t, atol=1e-6)
    m1 = fit_motion(s, c, t, centroid=now, params=ForecastParams(tail_order=1))
    assert np.allclose(m1.velocity, a * (t - DT / 2), atol=1e-6)
    # its noise gain is larger (|(3, -4, 1)| / 2 vs |(1, -1)| per step): on noisy samples so is the velocity error
    sn, cn, _ = _samples(lambda t: 0.5 * a * t * t + np.array([0, 0, 1.0]), noise=0.002, seed=3)
    assert (fit_motion(sn, cn, t, params=ForecastParams(tail_order=2)).sigma_v
            > fit_motion(sn, cn, t, params=ForecastParams(tail_order=1)).sigma_v)
    m3 = fit_motion(s, c, t, centroid=now, params=ForecastParams(damping_s=np.inf))
    assert float(np.linalg.norm(now + m3.displacement(lead)[0] - true)) < 0.8 * errs[1]


def test_circling_object_is_forecast_along_its_turn():
    """An object on a circle (radius 0.1 m, 1.5 rad/s, 1 m away; slightly noisy samples): the coordinated turn
    follows the arc where constant velocity flies off along the tangent and the parabola overshoots; the turn rate
    is the circle's. Damped as by default, it beats the previous default (damped parabola with half the
    acceleration, the fit's velocity) at +1 s (at +0.5 s they are within 1 mm)."""
    r, w = 0.1, 1.5
    c0 = np.array([0.0, 0.0, 1.0])

    def pos(t):
        return c0 + r * np.array([np.cos(w * t), np.sin(w * t), 0.0])

    s, c, t = _samples(pos, noise=0.0005, seed=2)
    lead = np.array([0.5, 1.0])
    true = np.stack([pos(t + h) for h in lead])
    errs = {}
    for name, kw in (("turn", dict(damping_s=np.inf)), ("parabola", dict(turn=False, damping_s=np.inf)),
                     ("cv", dict(turn=False, damping_s=np.inf, accel_gain=0.0)), ("default", {}),
                     ("previous", dict(turn=False, tail_velocity=False, damping_s=1.0, accel_gain=0.5)),
                     ("hold", None)):
        if kw is None:
            errs[name] = np.linalg.norm(true - pos(t), axis=1)
            continue
        m = fit_motion(s, c, t, centroid=pos(t), params=ForecastParams(**kw))
        errs[name] = np.linalg.norm(pos(t) + m.displacement(lead) - true, axis=1)
        if name == "turn":
            assert abs(m.turn_rate() - w) < 0.15 * w, m.turn_rate()
            # speed kept: the forecast stays on (near) the circle
            assert np.all(np.abs(np.linalg.norm(pos(t) + m.displacement(lead) - c0, axis=1) - r) < 0.02)
    assert np.all(errs["turn"] < 0.5 * errs["cv"]) and np.all(errs["turn"] < 0.5 * errs["hold"]), errs
    assert np.all(errs["turn"] < errs["parabola"]) and errs["default"][1] < 0.9 * errs["previous"][1], errs


def test_stopping_object_forecast_falls_back_toward_holding_still():
    v = np.array([0.25, 0.0, 0.0])
    t_stop = 1.6

    def pos(t):
        return np.array([0, 0, 1.0]) + v * min(t, t_stop)

    s, c, t = _samples(pos)                                                   # stopped for the last 0.4 s
    now = pos(t)
    m = fit_motion(s, c, t, centroid=now)
    line = fit_motion(s, c, t, centroid=now, params=ForecastParams(degree=1, recency_s=np.inf, history_s=1.0,
                                                                   **FIT))
    err = np.linalg.norm(m.displacement([1.0])[0])                           # the truth holds still
    assert err < 0.3 * np.linalg.norm(line.displacement([1.0])[0])
    assert err < 0.05


def test_new_and_noisy_objects_fall_back_toward_holding_still():
    # one sample (a new object seen in one frame): no velocity, an uncertain forecast
    m = fit_motion([1.0], [[0.0, 0.0, 1.0]], 1.0)
    assert np.all(m.velocity == 0) and m.sigma([1.0])[0] > 0
    # a still object whose centroid jitters: the fitted velocity is mostly noise and is shrunk
    rng = np.random.default_rng(0)
    s, c, t = _samples(lambda t: np.array([0.0, 0.0, 1.0]), noise=0.01, seed=5)
    m = fit_motion(s, c, t, params=ForecastParams(shrink=1.0, backtest=False, **FIT))     # shrinkage alone
    m0 = fit_motion(s, c, t, params=ForecastParams(shrink=0.0, backtest=False, **FIT))
    assert np.linalg.norm(m.velocity) < np.linalg.norm(m0.velocity)
    assert np.linalg.norm(m.velocity_raw - m0.velocity_raw) < 1e-12          # same fit, only shrunk
    # what shrinkage drops is added to the predicted error
    assert m.sigma([1.0])[0] >= m0.sigma([1.0])[0] - 1e-12
    del rng


def test_forecast_points_moves_object_pixels_rotates_about_centroid_and_holds_the_rest():
    omega = np.array([0.0, 0.0, 1.5])
    v = np.array([0.1, 0.0, 0.0])
    c0 = np.array([0.0, 0.0, 1.0])
    pts = c0 + np.array([[0.03, 0.0, 0.0], [0.0, 0.03, 0.0], [-0.03, 0.0, 0.0]])
    bg = np.array([[0.3, 0.2, 1.5], [np.nan, np.nan, np.nan]])
    s, c, t = _samples(lambda t: c0 + v * (t - 2.0))
    m = fit_motion(s, c, t, centroid=c0, omegas=[omega], params=ForecastParams(rotation=True, **CV))
    X = np.concatenate([pts, bg])
    ids = np.array([7, 7, 7, -1, -1])
    lead = np.array([0.5, 1.0])
    pos, sig, conf = forecast_points(X, ids, {7: m}, lead, window_s=0.3)
    for k, h in enumerate(lead):
        R = so3_exp(omega * h)
        assert np.allclose(pos[:3, k], c0 + v * h + (pts - c0) @ R.T, atol=1e-6)
    assert np.allclose(pos[3], bg[0][None]) and np.all(np.isnan(pos[4])) and np.all(conf[4] == 0)
    assert np.all(np.diff(sig[:4], axis=1) > 0) and np.all(np.diff(conf[:4], axis=1) <= 0)
    # without rotation the pixels translate rigidly with the centroid
    m_nr = fit_motion(s, c, t, centroid=c0, omegas=[omega], params=ForecastParams(rotation=False, **CV))
    pos2, _, _ = forecast_points(pts, np.full(3, 7), {7: m_nr}, lead, 0.3)
    assert np.allclose(pos2 - pts[:, None], (v * lead[:, None])[None], atol=1e-6)


def test_pixels_next_to_an_object_hold_still_with_its_motion_in_their_error():
    """A pixel of no object on an object's rim (within rim_px in the image) may be the object's, unsegmented: it
    holds still but its predicted error adds the object's displacement; far pixels keep the static error."""
    labels = np.zeros((9, 12), np.uint16)
    labels[3:6, 2:5] = 7
    labels[3:6, 8:10] = 9
    near = near_objects(labels, 2)
    assert np.all(near[labels > 0] == -1)
    assert near[4, 5] == 7 and near[4, 6] == 7 and near[4, 7] == 9 and near[1, 3] == 7 and near[4, 11] == 9
    assert near[0, 0] == -1 and near[8, 6] == -1                        # > 2 px from every object
    assert np.all(near_objects(labels, 0) == -1) and np.all(near_objects(np.zeros((4, 4)), 2) == -1)
    v = np.array([0.2, 0.0, 0.0])
    s, c, t = _samples(lambda t: np.array([0.0, 0.0, 1.0]) + v * t)
    m = fit_motion(s, c, t, params=ForecastParams(**CV))
    X = np.array([[0.0, 0.0, 1.0], [0.05, 0.0, 1.0], [0.5, 0.0, 1.0]])   # object, its rim, far background
    ids, nid = np.array([7, -1, -1]), np.array([-1, 7, -1])
    lead = np.array([0.5, 1.0])
    pos, sig, conf = forecast_points(X, ids, {7: m}, lead, 0.3)
    pos_r, sig_r, conf_r = forecast_points(X, ids, {7: m}, lead, 0.3, near_ids=nid)
    assert np.array_equal(pos, pos_r)                                   # positions unchanged: the rim holds still
    assert np.allclose(sig_r[1], np.sqrt(sig[1] ** 2 + (0.2 * lead) ** 2))          # + the displacement
    assert np.all(conf_r[1] < conf[1]) and np.array_equal(sig_r[[0, 2]], sig[[0, 2]])


def test_confidence_is_the_probability_within_tolerance():
    rng = np.random.default_rng(1)
    sigma = 0.04                                                              # 3D RMS
    e = np.linalg.norm(rng.normal(0, sigma / np.sqrt(3), (200000, 3)), axis=1)
    assert abs(np.sqrt((e ** 2).mean()) - sigma) < 1e-3
    for tol in (0.02, 0.04, 0.08):
        assert abs(float(confidence(sigma, 1.0, tol)) - (e < tol).mean()) < 0.01
    assert abs(float(maxwell_cdf(2.5)) - 0.9) < 0.01                          # the 90 % radius 1.443 sigma


def test_frame_alignment_recovers_camera_motion_and_ignores_movers():
    rng = np.random.default_rng(2)
    P = rng.uniform([-0.5, -0.4, 0.8], [0.5, 0.4, 1.6], (30, 40, 3))
    R = so3_exp(np.array([0.02, -0.05, 0.01]))
    t = np.array([0.03, -0.01, 0.02])
    Q = P @ R.T + t
    dyn = np.zeros((30, 40), bool)
    dyn[5:12, 5:15] = True
    Q[dyn] += 0.2                                                             # a mover: not the camera's motion
    s, R2, t2 = frame_alignment(P, dyn, Q)
    assert abs(s - 1) < 1e-9 and np.allclose(R2, R, atol=1e-9) and np.allclose(t2, t, atol=1e-9)
    # robust without the mask too (the movers are a minority), and a scale change is recovered
    s3, R3, _ = frame_alignment(P, None, 1.1 * Q)
    assert abs(s3 - 1.1) < 0.02 and np.allclose(R3, R, atol=0.02)
    s4, R4, t4 = similarity(P.reshape(-1, 3), 2.0 * P.reshape(-1, 3))
    assert abs(s4 - 2.0) < 1e-9 and np.allclose(R4, np.eye(3)) and np.allclose(t4, 0, atol=1e-9)


def _obj(label, traj, stamps, box=(10, 10, 20, 20)):
    return DynamicObject(id=label, label=label, pixel_count=100, box=box, centroid=traj[-1].copy(),
                         velocity=np.zeros(3), speed=0.0, trajectory=traj, trajectory_stamps=stamps,
                         forecast=np.zeros((0, 3)), forecast_stamps=np.zeros(0), forecast_confidence=np.zeros(0),
                         confidence=1.0, rotations=np.broadcast_to(np.eye(3), (len(stamps), 3, 3)).copy())


def test_tracker_keeps_each_objects_history_across_windows_and_aligns_it():
    tr = ObjectTracker(history_keep_s=0.55)
    labels = np.zeros((40, 40), np.int32)
    labels[10:21, 10:21] = 1
    v = np.array([0.2, 0.0, 0.0])
    pts = np.random.default_rng(0).uniform([-0.5, -0.4, 0.8], [0.5, 0.4, 1.6], (40, 40, 3))  # the scene's points
    for k in range(5):  # windows of 4 frames, a new one every 2 frames
        st = 0.1 * np.arange(2 * k, 2 * k + 4)
        traj = np.array([0.0, 0.0, 1.0]) + v * st[:, None]
        objs = tr.update(labels, [_obj(1, traj, st)], stamp=float(st[-1]), positions=pts)
        assert objs[0].id == 1
    hs, hc, hg, hws, hw = tr.history(1)
    assert len(np.unique(hg)) >= 2 and np.allclose(np.unique(hg), [0.7, 0.9, 1.1])  # the windows' analysed stamps
    assert hs.min() >= st[-1] - 0.55 - 1e-9 and len(hs) >= 6 and len(hw) >= 2
    assert np.allclose(hc, np.array([0.0, 0.0, 1.0]) + v * hs[:, None])
    m = fit_motion(hs, hc, float(st[-1]), windows=hg, params=ForecastParams(**CV))
    assert np.allclose(m.velocity, v, atol=1e-6)
    # the next window sees the same image (the shared frame) from a camera moved by 5 cm: histories follow
    assert tr.shared_frame([0.9, 1.0, 1.1, 1.2]) == 2 and tr.shared_frame([1.05, 1.15]) is None
    tr.align_history(pts + np.array([0.05, 0.0, 0.0]))
    assert np.allclose(tr.history(1)[1], hc + np.array([0.05, 0.0, 0.0]), atol=1e-9)
    tr.reset()
    assert tr.history(1) is None and tr.shared_frame([0.9]) is None


def test_window_offsets_ignore_centroid_jumps_between_windows():
    """Each window's centroid is the mean of the pixels segmented in it: when the segmentation changes, the centroid
    jumps between windows though the object moves smoothly. With an offset per window only the motion is shared."""
    v = np.array([0.15, 0.0, 0.0])
    s, c, t = _samples(lambda t: np.array([0.0, 0.0, 1.0]) + v * t)
    g = np.repeat(np.arange(len(s) // 4), 4)
    c = c + np.array([0.0, 0.02, 0.0]) * (g % 2)[:, None]                  # every other window sees another part
    with_off = fit_motion(s, c, t, windows=g, params=ForecastParams(**FIT))
    without = fit_motion(s, c, t, windows=g, params=ForecastParams(window_offsets=False, **FIT))
    assert np.allclose(with_off.velocity, v, atol=1e-6)
    assert np.linalg.norm(without.velocity_raw - v) > 0.01


def test_backtest_holds_back_an_oscillating_object_and_keeps_a_steady_one():
    """The model's own record decides how far it is trusted: refitted at each past stamp, its extrapolation of an
    oscillating centroid misses the later samples (holding still misses less), so its motion is weighted down; a
    steadily moving (noisy) object's extrapolation beats holding still and keeps its motion."""
    for period in (0.6, 0.8, 1.0):
        def pos(t):
            return np.array([0.1 * np.sin(2 * np.pi * t / period), 0.0, 1.0])

        e_on, e_off, w = [], [], []
        for t_end in np.arange(2.0, 3.0, 0.1):
            s, c, t = _samples(pos, t_end=t_end, noise=0.002, seed=int(round(t_end * 10)))
            g = np.repeat(np.arange(len(s) // 4), 4)
            on = fit_motion(s, c, t, centroid=pos(t), windows=g, params=ForecastParams(**BT))
            off = fit_motion(s, c, t, centroid=pos(t), windows=g, params=ForecastParams(**{**BT, "backtest": False}))
            true = pos(t + 0.5) - pos(t)
            e_on.append(np.linalg.norm(on.displacement([0.5])[0] - true))
            e_off.append(np.linalg.norm(off.displacement([0.5])[0] - true))
            w.append(on.weight)
            assert np.linalg.norm(on.velocity_raw - off.velocity_raw) < 1e-12     # same fit, only weighted
            assert on.sigma([0.5])[0] >= off.sigma([0.5])[0] - 1e-12            # what it drops counts as error
        assert np.mean(e_on) < 0.75 * np.mean(e_off), period
        assert np.mean(w) < 0.5, period
    v = np.array([0.2, -0.1, 0.0])
    for seed in range(5):
        s, c, t = _samples(lambda t: np.array([0.0, 0.0, 1.0]) + v * t, noise=0.005, seed=seed)
        g = np.repeat(np.arange(len(s) // 4), 4)
        m = fit_motion(s, c, t, windows=g, params=ForecastParams(**BT))
        off = fit_motion(s, c, t, windows=g, params=ForecastParams(**{**BT, "backtest": False}))
        assert m.weight > 0.9 and np.allclose(m.velocity, m.weight * off.velocity)
    # no record to judge by (two samples): no weighting
    m = fit_motion([0.9, 1.0], [[0.0, 0.0, 1.0], [0.02, 0.0, 1.0]], 1.0, params=ForecastParams(**BT))
    assert m.weight == 1.0
    s, c, t = _samples(lambda t: np.array([0.1 * np.sin(2 * np.pi * t / 0.8), 0.0, 1.0]))
    assert fit_motion(s, c, t).weight == 1.0                               # off by default


def _table_scene(h=96, w=128, f=100.0, seed=0):
    """Camera-frame points ``[H, W, 3]`` of a tilted table (n . p + d = 0, n toward the camera) seen from above,
    with a box of label 1 standing 5-10 cm above it and one of label 2 below the plane (a floor past the table's
    edge); noise 1 mm."""
    n = np.array([0.0, -0.8, -0.6])
    d = 0.92
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - w / 2) / f, (v - h / 2) / f, np.ones_like(u)], -1)
    X = rays * (-d / (rays @ n))[..., None]
    X += np.random.default_rng(seed).normal(0, 1e-3, X.shape)
    labels = np.zeros((h, w), np.uint16)
    labels[40:56, 50:70] = 1
    labels[70:80, 10:20] = 2
    lift = np.linspace(0.05, 0.10, 16)[:, None] * np.ones((1, 20))
    X[40:56, 50:70] += lift[..., None] * n
    X[70:80, 10:20] -= 0.2 * n
    return X, labels, n, d


def test_support_floor_lands_a_falling_object_on_the_table_and_keeps_its_slide():
    """The static scene's plane is a floor: a forecast carrying an object through it stops where the object's lowest
    points touch it and keeps the motion along it; an object beyond the plane gets no floor."""
    X, labels, n, _ = _table_scene()
    floors = support_floors(X, labels)
    assert set(floors) == {1} and len(floors[1]) == 1
    (fn, gap), = floors[1]
    assert abs(abs(float(fn @ n)) - 1.0) < 1e-3 and float(fn @ n) > 0  # the table, facing the camera
    assert 0.05 <= gap <= 0.06   # the box's lowest points (10th percentile of its 5-10 cm heights)
    tangent = np.array([1.0, 0.0, 0.0])
    v = -0.2 * n + 0.1 * tangent
    m = ObjectMotion(t_ref=0.0, centroid=X[48, 60], velocity=v, velocity_raw=v, omega=np.zeros(3), sigma0=0.0,
                     sigma_v=0.0, accel=0.0, span_s=0.5, samples=5)
    lead = np.array([0.1, 0.5, 1.0])
    free = m.displacement(lead)
    m.floors = floors[1]
    d = m.displacement(lead)
    np.testing.assert_allclose(d[0], free[0])                      # 2 cm down: above the table still
    np.testing.assert_allclose(d[1:] @ fn, -gap, atol=1e-9)        # landed, not through it
    np.testing.assert_allclose(d[1:] @ tangent, free[1:] @ tangent, atol=1e-3)  # and it slides on
    assert np.all(free[1:] @ fn < -gap - 0.03)                     # where it would have gone


def test_no_floor_without_a_plane_that_explains_the_static_scene():
    X, labels, _, _ = _table_scene()
    rng = np.random.default_rng(1)
    clutter = X * rng.uniform(0.5, 1.5, X.shape[:2])[..., None]   # every static point at a random depth on its ray
    assert support_floors(clutter, labels) == {}
    assert support_floors(X, np.zeros_like(labels)) == {}          # no object
    assert set(support_floors(X, labels, ForecastParams(plane_min_inliers=0.3))) == {1}
    # a second plane (a wall behind the table, here the right third of the image): a floor for each
    wall = X.copy()
    wall[:, 90:] = X[:, 90:] * (2.5 / X[:, 90:, 2])[..., None]      # the plane z = 2.5 m
    fl = support_floors(wall, labels)
    assert len(fl[1]) == 2 and any(abs(n[2] + 1.0) < 1e-3 for n, _ in fl[1])


def test_params_are_validated():
    for bad in (dict(degree=3), dict(history_s=0.0), dict(tolerance=-1.0), dict(shrink=-1.0),
                dict(backtest_power=-1.0), dict(rim_px=-1), dict(tail_order=3), dict(plane_rel=-0.1),
                dict(plane_min_inliers=1.5), dict(floor_quantile=101.0), dict(max_planes=-1)):
        with pytest.raises(ValueError):
            ForecastParams(**bad).validate()


@pytest.mark.sim
def test_pipeline_forecasts_of_a_moving_sim_object_beat_holding_still():
    """A MuJoCo pick-and-place stream (the gripper carries an object) through ``PerceptionPipeline`` (the node's
    code path: tracker, histories, motion models), ground-truth fields as perception: the dense forecasts, the
    sparse tracks' forecasts and the object's forecast beat holding still at +0.5 s and +1 s."""
    from trace_anything_ros.eval import field_benchmark as runner
    from trace_anything_ros.eval.estimators import GroundTruthEstimator
    from trace_anything_ros.eval.metrics import forecast_error, forecast_references
    from trace_anything_ros.pipeline import PipelineParams

    cfg = dict(runner.PRESETS["ci"], scenes=["pick_place"], seeds=[11], windows=1, frames=4, dt=0.1, width=96,
               height=72, history_s=1.0, horizons=[0.5, 1.0])
    w = next(iter(runner.generate_windows(cfg)))
    params = PipelineParams(track_stride=8, forecast_horizon=1.0, forecast_samples=2, tracks_per_object=16)
    prods, _ = runner.stream_products(GroundTruthEstimator(), w, cfg, products=None, params=params)
    gt, last = w["gt"], w["gt"].valid.shape[0] - 1
    fe = forecast_error(prods.field, gt, w["future"], 1.0, runner.pipeline_forecaster(prods))
    ref = forecast_references(gt, w["frames"][-1]["body_poses"], w["past"], w["delta"], w["future"])["hold_still"]
    for h in ("0.5s", "1s"):
        assert fe[h]["dynamic"] < 0.8 * ref["forecast"][h]["dynamic"], (h, fe[h], ref["forecast"][h])
    # the published tracks: those on the moving object move with it and beat holding still
    tr = prods.tracks
    assert tr is not None and np.allclose(np.asarray(prods.forecast_stamps_ns) * 1e-9 - w["frames"][-1]["stamp"],
                                          [0.5, 1.0], atol=1e-6)
    cols, rows = np.round(tr.uv[:, 0]).astype(int), np.round(tr.uv[:, 1]).astype(int)
    on = gt.dynamic_mask[last][rows, cols] & (tr.object_id >= 0)
    assert on.sum() >= 5
    for k, h in enumerate((0.5, 1.0)):
        true = gt.positions_at(w["future"][h], frames=[last])[0][rows, cols]
        e_fc = np.linalg.norm(tr.forecast[on, k] - true[on], axis=1).mean()
        e_hold = np.linalg.norm(tr.positions[on, -1] - true[on], axis=1).mean()
        assert e_fc < 0.8 * e_hold, (h, e_fc, e_hold)
    assert np.all(np.diff(tr.forecast_conf[on], axis=1) <= 0) and np.all((tr.forecast_conf >= 0)
                                                                         & (tr.forecast_conf <= 1))
    # the object: its forecast confidence falls with lead time, its model is the one the tracks used
    o = max(prods.objects, key=lambda o: o.pixel_count)
    assert o.id in prods.motion_models and np.all(np.diff(o.forecast_conf) < 0)


@pytest.mark.sim
def test_a_falling_sim_object_lands_on_the_table_in_the_pipelines_forecast():
    """MuJoCo tabletop (seed 3094: a body falling toward the table in the evaluated window), ground-truth fields
    through ``PerceptionPipeline`` with the depth images: the table is found as a floor under the objects, and with
    it the moving pixels' forecasts beat the same models without floors (measured 80.9 / 135.1 -> 55.8 / 83.9 mm at
    +0.5 / +1 s), where a free forecast would sink through it."""
    from trace_anything_ros.eval import field_benchmark as runner
    from trace_anything_ros.eval.estimators import GroundTruthEstimator
    from trace_anything_ros.pipeline import PipelineParams

    cfg = dict(runner.PRESETS["ci"], scenes=["tabletop"], seeds=[3094], windows=1, frames=4, dt=0.1, width=96,
               height=72, history_s=1.0, horizons=[0.5, 1.0])
    w = next(iter(runner.generate_windows(cfg)))
    prods, _ = runner.stream_products(GroundTruthEstimator(), w, cfg, products=None,
                                      params=PipelineParams(track_stride=0, forecast_horizon=1.0))
    gt, last = w["gt"], w["gt"].valid.shape[0] - 1
    dyn = gt.dynamic_mask[last] & gt.valid[last]
    models = prods.motion_models
    assert models and all(m.floors for m in models.values())
    fc = runner.pipeline_forecaster(prods)
    floors = {k: m.floors for k, m in models.items()}
    err = {}
    for arm in ("on", "off"):
        for k, m in models.items():
            m.floors = floors[k] if arm == "on" else ()
        err[arm] = [np.linalg.norm(fc(h)[0] - gt.positions_at(w["future"][h], frames=[last])[0], axis=-1)[dyn].mean()
                    for h in (0.5, 1.0)]
    assert err["on"][0] < 0.8 * err["off"][0] and err["on"][1] < 0.8 * err["off"][1], err
    # without floors (the models' state after the "off" arm) some object's forecast sinks through the table
    assert all(m.floors == () for m in models.values())
    depth = {k: min(float(np.min(m.displacement([0.5, 1.0]) @ n + g)) for n, g in floors[k])
             for k, m in models.items()}
    assert min(depth.values()) < -0.02, depth
