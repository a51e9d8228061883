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

"""Stamp <-> normalised time map: degenerate predictions, irregular stamps, monotone and invertible."""
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from trace_anything_ros.field.timemap import build_time_map, isotonic_increasing

FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trace_anything_parity"


def test_official_fixture_times_fall_back_to_stamps():
    # the official model's predicted times for input times 0, .5, 1 (parity fixture README)
    tm = build_time_map([0.0, 0.5, 1.0], [0.92353, 0.92265, 0.60321])
    assert tm.source == "stamps"
    assert "degenerate" in tm.reason
    assert np.allclose(tm.frame_times, [0.0, 0.5, 1.0])


def test_fixture_file_if_present_uses_the_same_rule(fixtures_dir):
    path = fixtures_dir / "trace_anything_parity" / "outputs.npz"
    if not path.exists():
        pytest.skip(f"parity fixture not found at {path}")
    times = np.load(path)["time"].reshape(-1)
    tm = build_time_map([0.0, 0.5, 1.0], times)
    assert tm.source == "stamps"


def test_sane_predictions_are_used_and_irregular_stamps_handled():
    stamps = 50.0 + np.array([0.0, 0.1, 0.15, 0.4, 0.5])
    u = (stamps - stamps[0]) / 0.5
    pred = 0.05 + 0.9 * u + np.array([0.0, 0.01, -0.01, 0.0, 0.005])
    tm = build_time_map(stamps, pred)
    assert tm.source == "predicted_pwl"
    assert np.allclose(tm.frame_times, pred, atol=1e-9)
    tma = build_time_map(stamps, pred, mode="affine")
    assert tma.source == "predicted_affine"
    assert np.abs(tma.frame_times - pred).max() < 0.02
    assert np.isclose(tma.rate(51.0), tma.rate(50.2))
    ts = build_time_map(stamps, pred, mode="stamps")
    assert ts.source == "stamps" and np.allclose(ts.frame_times, u)
    # rate is dt/ds: ~0.9 / 0.5 s
    assert abs(tm.rate(stamps[-1] + 1.0) - 0.9 / 0.5) < 0.1


def test_non_monotone_and_duplicate_predictions_stay_monotone():
    stamps = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    pred = [0.0, 0.25, 0.2, 0.6, 0.8, 1.0]  # one local inversion
    tm = build_time_map(stamps, pred)
    assert tm.source == "predicted_pwl"
    assert np.all(np.diff(tm.frame_times) > 0)
    dup = build_time_map(stamps, [0.0, 0.2, 0.2, 0.2, 0.8, 1.0])
    assert np.all(np.diff(dup.frame_times) > 0)
    assert np.allclose(isotonic_increasing([1.0, 0.0, 2.0]), [0.5, 0.5, 2.0])
    # duplicated stamps are merged, not a crash
    tm2 = build_time_map([0.0, 0.0, 1.0, 2.0], [0.0, 0.02, 0.5, 1.0])
    assert np.all(np.isfinite(tm2.frame_times)) and tm2.frame_times[0] == tm2.frame_times[1]


@pytest.mark.parametrize("pred,why", [([0.5, 0.5, 0.5, 0.5], "degenerate"), ([0.0, np.nan, 0.5, 1.0], "finite"),
                                      ([0.0, 0.9, 0.1, 1.0, 0.05], "")])
def test_bad_predictions_fall_back(pred, why):
    tm = build_time_map(np.arange(len(pred), dtype=float), pred)
    assert tm.source == "stamps"
    assert why in tm.reason


def test_input_validation_and_single_frame():
    with pytest.raises(ValueError):
        build_time_map([1.0, 0.0])
    with pytest.raises(ValueError):
        build_time_map([0.0, np.inf])
    with pytest.raises(ValueError):
        build_time_map([0.0, 1.0], [0.0, 1.0], mode="bogus")
    one = build_time_map([7.0], [0.3])
    assert one.source == "stamps" and one.frame_times[0] == 0.0 and np.isfinite(one.rate(7.0))


@settings(max_examples=80, deadline=None)
@given(gaps=st.lists(st.floats(0.001, 2.0), min_size=1, max_size=12),
       noise=st.lists(st.floats(-0.2, 0.2), min_size=13, max_size=13),
       slope=st.floats(-1.0, 1.5), mode=st.sampled_from(["auto", "affine", "stamps"]))
def test_map_is_monotone_and_invertible(gaps, noise, slope, mode):
    stamps = 1000.0 + np.concatenate([[0.0], np.cumsum(gaps)])
    u = (stamps - stamps[0]) / (stamps[-1] - stamps[0])
    pred = 0.1 + slope * u + np.array(noise[: len(stamps)])
    tm = build_time_map(stamps, pred, mode=mode)
    # the mode decides which maps are possible; predictions are used only when their slope is in [0.5, 1.5]
    assert tm.source in {"auto": ("predicted_pwl", "stamps"), "affine": ("predicted_affine", "stamps"),
                         "stamps": ("stamps",)}[mode]
    b = slope + noise[1] - noise[0]  # two stamps: the robust slope is the slope of the line through both
    if len(stamps) == 2 and mode != "stamps" and min(abs(b - 0.5), abs(b - 1.5)) > 1e-9:
        assert (tm.source != "stamps") == (0.5 < b < 1.5), (b, tm.reason)
    q = np.linspace(stamps[0] - 1.0, stamps[-1] + 3.0, 301)
    t = tm.to_time(q)
    assert np.all(np.diff(t) > 0), "strictly increasing"
    assert np.allclose(tm.to_stamp(t), q, atol=1e-6 * (1 + np.abs(q).max()) * 10)
    assert np.all(tm.rate(q) > 0)
    if tm.source == "stamps":
        assert np.allclose(tm.frame_times, u)
