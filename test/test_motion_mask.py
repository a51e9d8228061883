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

"""Dynamic masks on synthetic fields with known motion (robust rule and the official baseline)."""
import numpy as np
import pytest

from trace_anything_ros.field import synthetic
from trace_anything_ros.motion import MotionParams, analyze
from trace_anything_ros.motion.mask import dynamic_mask, official_variance_mask, otsu_threshold

REALISTIC_NOISE = (0.0, 0.002, 0.005)  # per-control-point noise relative to depth (0.5 % = 5 mm at 1 m)
KINDS_MOVING = ("one", "two_touching", "two_apart", "rotating", "articulated")


def iou(a, b):
    u = np.logical_or(a, b).sum()
    return 1.0 if u == 0 else np.logical_and(a, b).sum() / u


@pytest.mark.parametrize("noise", REALISTIC_NOISE)
@pytest.mark.parametrize("kind", KINDS_MOVING)
def test_mask_iou_at_realistic_noise(kind, noise):
    for seed in (11, 12):
        f, truth, _ = synthetic.random_case(seed, kind=kind, noise=noise, nan_box=(0, 8, 0, 10),
                                            zero_conf_box=(56, 64, 52, 64))
        res = analyze(f)
        gt = truth.moving_mask(-1)
        assert gt.sum() > 100
        assert iou(res.mask, gt) >= 0.9, (kind, noise, seed, iou(res.mask, gt))
        # never moving where the values are NaN or the confidence is zero
        assert not res.mask[~truth.valid[-1]].any()
        assert not res.valid[:8, :10].any() and not res.valid[56:, 52:].any()


@pytest.mark.parametrize("noise", (0.0, 0.002, 0.005, 0.01, 0.02))
def test_static_scenes_are_empty_at_every_noise_level(noise):
    for seed in range(4):
        f, truth, _ = synthetic.random_case(100 + seed, kind="static", noise=noise,
                                            zero_conf_box=(0, 20, 0, 20), camera_velocity=(0.1, 0.0, 0.05))
        assert truth.num_moving_instances == 0
        res = analyze(f)
        assert not res.mask.any(), (noise, seed, res.mask.sum())
        assert res.objects == [] and res.labels.max() == 0
        # the official baseline, by construction, always marks >= ~5 % of the pixels as moving
        base, _, _ = official_variance_mask(f.ctrl_pts[-1])
        assert base.mean() >= 0.04


def test_static_scene_with_nan_everywhere_but_a_corner():
    f, _, _ = synthetic.random_case(7, kind="static", noise=0.003, nan_box=(0, 64, 8, 64))
    res = analyze(f)
    assert not res.mask.any() and res.valid[:, 8:].sum() == 0


def test_noise_threshold_tracks_noise_and_depth_normalisation():
    thr = []
    for noise in (0.004, 0.008, 0.016):
        f, _, _ = synthetic.random_case(5, kind="one", noise=noise)
        thr.append(analyze(f, params=MotionParams(min_rel_motion=0.0)).threshold)
    assert thr[0] < thr[1] < thr[2]
    # relative displacement: the same world motion is a smaller score far away
    positions = np.zeros((3, 2, 2, 3))
    positions[..., 2] = [[1.0, 1.0], [4.0, 4.0]]
    positions[2, :, :, 0] += 0.1
    m = dynamic_mask(positions, 0, min_rel_motion=0.0, noise_k=1.0, open_radius=0, close_radius=0, min_area=1)
    assert np.allclose(m.score[:, 0], [0.1, 0.025])


def test_official_baseline_rule_on_a_clear_split():
    rng = np.random.default_rng(0)
    ctrl = np.repeat(rng.normal(size=(1, 32, 32, 3)) * 0.01, 10, axis=0)
    ctrl += rng.normal(size=ctrl.shape) * 1e-4
    ctrl[:, 8:16, 8:16, 0] += np.linspace(0, 1, 10)[:, None, None]  # 6 % of pixels move a lot
    mask, var, thr = official_variance_mask(ctrl)
    assert mask[8:16, 8:16].all() and mask.sum() == 64
    # the threshold is an Otsu split of log-variance ...
    assert var[~mask].max() < thr < var[8:16, 8:16].min()
    for values in (np.r_[np.zeros(50), np.ones(50)], np.r_[np.full(30, 2.0), np.full(70, 5.0)]):
        t = otsu_threshold(values)
        assert values.min() <= t < values.max() and np.array_equal(values > t, values == values.max()), t
    assert otsu_threshold(np.array([np.nan])) is None
    # ... clamped to the [40 %, 95 %] quantiles: 78 % of the pixels vary a lot, Otsu would mark all of them, the
    # clamp marks 60 %
    ctrl = rng.normal(size=(10, 32, 32, 3)) * 1e-3
    ctrl[:, :, 7:, :] *= 100
    mask, var, thr = official_variance_mask(ctrl)
    assert np.exp(otsu_threshold(np.log(var + 1e-9))) < np.quantile(var, 0.40) == thr
    assert abs(mask.mean() - 0.60) < 0.01 and mask[:, 7:].mean() > 0.7 and not mask[:, :7].any()


def test_params_validation():
    MotionParams().validate()
    for bad in ({"noise_k": 0.0}, {"min_area": 0}, {"conf_quantile": 0.95}, {"forecast_mode": "jerk"},
                {"time_map_mode": "x"}, {"open_radius": 1.5}, {"forecast_horizon_s": 0.0}):
        with pytest.raises(ValueError):
            MotionParams(**bad).validate()
    with pytest.raises(ValueError):
        MotionParams.from_dict({"nosuch": 1})
    assert MotionParams.from_dict({"noise_k": 4.0}).noise_k == 4.0
    f, _, _ = synthetic.random_case(1, kind="static")
    with pytest.raises(ValueError):
        analyze(f, params=MotionParams(frame=99))
