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

"""Hostile input, ROS-free parts (issue 14): cost bounds of preprocessing from the declared shape, stream consistency
of FrameIngest against an interleaving second publisher, future stamps, and the plausibility gates (camera matrix,
sizes, outputs). The node-level path is in test_hostile_node.py (in-process fuzz) and test_hostile_publisher.py
(separate process, real DDS)."""
import time
import tracemalloc
import types

import numpy as np
import pytest

from trace_anything_ros.model import preprocess as pp
from trace_anything_ros.pipeline import Frame, FrameIngest, WindowSpec, gates
from trace_anything_ros.pipeline import frames as F

GRID = (32, 48)
SIZE = (120, 160)


def frame(stamp_ns, size=SIZE, arrival=None):
    f = Frame(stamp_ns=int(stamp_ns), rgb=np.zeros(GRID + (3,), np.uint8), frame_id="cam", source_size=size)
    if arrival is not None:
        f.arrival = arrival
    return f


# ------------------------------------------------------------------------------------------ preprocessing cost
@pytest.mark.parametrize("hw", [(1, 4_000_000), (4_000_000, 1), (1, 20_000), (20_000, 1), (3, 30_000)])
def test_extreme_aspect_is_refused_from_the_shape_before_allocating(hw):
    tracemalloc.start()
    try:
        with pytest.raises(pp.PreprocessBudgetError) as ei:
            pp.check_cost(hw, GRID)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.reason == "extreme_aspect" and peak < 64 * 1024, peak


def test_the_resize_itself_refuses_an_extreme_array():
    """prepare_frame / prepare_depth check the budget too (a caller that skipped check_cost)."""
    strip = np.zeros((1, 20_000, 3), np.uint8)
    tracemalloc.start()
    try:
        for fn, a in ((pp.prepare_frame, strip), (pp.prepare_depth, strip[..., 0].astype(np.float32))):
            with pytest.raises(pp.PreprocessBudgetError):
                fn(a, GRID)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # the 550 MB upscale never starts


@pytest.mark.parametrize("hw", [(480, 640), (1080, 1920), (720, 5120), (100, 100), (640, 480), (2160, 3840)])
@pytest.mark.parametrize("grid", [(32, 48), (96, 128), (288, 512), (128, 96)])
def test_plausible_cameras_pass_the_budget(hw, grid):
    assert pp.check_cost(hw, grid) >= 0
    out = pp.prepare_frame(np.zeros(hw + (3,), np.uint8), grid, method="fast")
    assert out.shape[:2] == grid


# ------------------------------------------------------------------------------------------- stream policies
def _stream(ing, t0_ns, n, period_ns=50_000_000, size=SIZE, t_arr=None, now_ns=None):
    out = []
    for i in range(n):
        arr = None if t_arr is None else t_arr + i * period_ns * 1e-9
        out.append(ing.push(frame(t0_ns + i * period_ns, size, arrival=arr), now_ns=now_ns))
    return out


@pytest.mark.parametrize("attack", ["other_size", "back_in_time", "far_ahead"])
def test_interleaved_second_publisher_cannot_reset_the_stream(attack):
    """One hostile frame after every genuine frame: the genuine frames all go in, windows keep coming, the
    hostile ones are dropped under their reason, nothing is ever switched."""
    ing = FrameIngest(8, window=WindowSpec(length=4), switch_frames=3)
    t_arr = time.monotonic()
    windows, dropped = 0, []
    for i in range(40):
        s = 100_000_000_000 + i * 50_000_000
        assert ing.push(frame(s, arrival=t_arr + i * 0.05)) is None, i
        hs = {"other_size": s + 25_000_000, "back_in_time": s - 30_000_000_000,
              "far_ahead": s + 3600_000_000_000}[attack]
        size = (60, 80) if attack == "other_size" else SIZE
        dropped.append(ing.push(frame(hs, size, arrival=t_arr + i * 0.05 + 0.01)))
        if ing.take_window(0.0) is not None:
            windows += 1
    want = {"other_size": F.SIZE_CHANGE, "back_in_time": F.TIME_RESET, "far_ahead": F.TIME_JUMP}[attack]
    assert set(dropped) == {want} and ing.drops[want] == 40
    assert ing.accepted == 40 and ing.switches == 0 and windows >= 35 and ing.generation == 0


@pytest.mark.parametrize("change", ["size", "reset", "jump"])
def test_a_real_change_switches_after_n_consistent_frames(change):
    events = []
    ing = FrameIngest(8, window=WindowSpec(length=4), switch_frames=3, on_event=lambda k, m: events.append(k))
    t = time.monotonic()
    _stream(ing, 100_000_000_000, 6, t_arr=t)
    start = {"size": 100_400_000_000, "reset": 5_000_000_000, "jump": 500_000_000_000}[change]
    size = (240, 320) if change == "size" else SIZE
    res = _stream(ing, start, 6, size=size, t_arr=t + 0.35)
    kind = {"size": F.SIZE_CHANGE, "reset": F.TIME_RESET, "jump": F.TIME_JUMP}[change]
    assert res == [kind, kind, None, None, None, None], res
    assert ing.switches == 1 and events == [kind]
    snap = ing.snapshot()
    if change == "jump":  # a forward jump keeps the (older, same-timeline) frames
        assert len(snap) == 8
    else:  # the ring holds only the new stream: 4 frames, one window
        assert [f.source_size for f in snap] == [size] * 4 and snap[0].stamp_ns == start + 2 * 50_000_000
        win = ing.take_window(0.0)                            # the one window is of the new stream only
        assert win is not None and [f.stamp_ns for f in win] == [f.stamp_ns for f in snap]


def test_forward_jump_after_a_pause_is_no_change():
    """A camera that paused for 5 s: its stamps advanced as much as the arrival clock did -- accepted at once."""
    ing = FrameIngest(8, switch_frames=3)
    t = time.monotonic()
    _stream(ing, 10_000_000_000, 3, t_arr=t)
    assert _stream(ing, 15_100_000_000, 3, t_arr=t + 5.1) == [None] * 3 and ing.switches == 0


def test_future_stamps_are_refused_against_the_clock():
    ing = FrameIngest(8, max_future=0.25)
    now = 1_000_000_000_000
    assert ing.push(frame(now - 10_000_000), now_ns=now) is None
    assert ing.push(frame(now + 1_000_000_000), now_ns=now) == F.FUTURE_STAMP
    assert ing.push(frame(now + 200_000_000), now_ns=now) is None  # within the tolerance
    assert ing.push(frame(now + 10**18), now_ns=0) is not F.FUTURE_STAMP  # no clock yet (sim time): not checked
    assert ing.check_stamp(now + 10**12, now_ns=now) == F.FUTURE_STAMP
    assert ing.admit(now + 10**12, SIZE, now_ns=now) == F.FUTURE_STAMP and ing.drops[F.FUTURE_STAMP] == 2


def test_duplicates_of_a_pending_candidate_are_named():
    ing = FrameIngest(8, switch_frames=3)
    _stream(ing, 10_000_000_000, 3)
    assert ing.push(frame(1_000_000_000)) == F.TIME_RESET
    assert ing.push(frame(1_000_000_000)) == F.DUPLICATE_STAMP
    assert ing.push(frame(990_000_000)) == F.NON_MONOTONIC_STAMP


def test_switch_frames_one_is_the_old_behaviour():
    ing = FrameIngest(8)
    _stream(ing, 10_000_000_000, 3)
    assert ing.push(frame(1_000_000_000)) is None and len(ing) == 1 and ing.drops[F.TIME_RESET] == 3


# -------------------------------------------------------------------------------------------------- gates
K_GOOD = [100.0, 0.0, 79.5, 0.0, 100.0, 59.5, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("k,hw", [
    ([1.0, 0, 0, 0, 1.0, 0, 0, 0, 0], SIZE),             # the degenerate matrix: zero last row
    ([1.0, 0, 79.5, 0, 1.0, 59.5, 0, 0, 1.0], SIZE),     # fx = fy = 1: a 179.3 degree field of view
    ([100.0, 0, 79.5, 0, -100.0, 59.5, 0, 0, 1.0], SIZE),
    ([100.0, 0, 5000.0, 0, 100.0, 59.5, 0, 0, 1.0], SIZE),  # principal point far outside
    ([100.0, 0, 79.5, 0, 100.0, 59.5, 0, 0, 2.0], SIZE),
    ([100.0, 0, 79.5, 0, 100.0, 59.5, 0.1, 0, 1.0], SIZE),
    ([float("nan")] + K_GOOD[1:], SIZE),
    ([1e300, 0, 79.5, 0, 1e300, 59.5, 0, 0, 1.0], SIZE),
    ([100.0, 0, 79.5, 0, 1.0, 59.5, 0, 0, 1.0], SIZE),   # fx/fy = 100
    (K_GOOD, (0, 160)),
    (K_GOOD[:8], SIZE),
])
def test_implausible_camera_matrices_are_named(k, hw):
    bad = gates.intrinsics_problem(k, hw)
    assert bad is not None and bad[0] == "invalid_camera_info" and len(bad[1]) < 200


@pytest.mark.parametrize("k,hw", [(K_GOOD, SIZE), ([615.0, 0, 320.0, 0, 615.0, 240.0, 0, 0, 1], (480, 640)),
                                  ([190.0, 0, 320.0, 0, 190.0, 240.0, 0, 0, 1], (480, 640))])  # ~118 deg
def test_real_camera_matrices_pass(k, hw):
    assert gates.intrinsics_problem(k, hw) is None


def test_distortion_is_measured_in_pixels_and_named():
    """A camera_info of a raw (not rectified) image: how far its distortion moves a pixel from the pinhole's place,
    against OpenCV's own projection of the same model; rectified ones (no, zero or negligible coefficients) are
    quiet, and what cannot be judged (unknown model, wrong count, NaN, a hostile string) is named, clipped."""
    import cv2
    k = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    hw = (480, 640)
    for d in ([], [0.0] * 5, [1e-5, 0, 0, 0, 0]):
        assert gates.distortion_warning(k, d, "plumb_bob", hw) is None
    d = np.array([-0.3, 0.1, 0.0, 0.0, 0.0])
    px = gates.distortion_px(k, d, "plumb_bob", hw)
    # the corner (radius rd focal lengths as imaged) is the ray at r with r (1 - 0.3 r^2 + 0.1 r^4) = rd
    rd = np.hypot(319.5, 239.5) / 500.0
    r = min(x.real for x in np.roots([0.1, 0, -0.3, 0, 1.0, -rd]) if abs(x.imag) < 1e-9 and x.real > 0)
    assert px == pytest.approx((r - rd) * 500.0, rel=0.02)
    ray = np.array([[[319.5 / 500.0 * r / rd, 239.5 / 500.0 * r / rd, 1.0]]])
    corner = cv2.projectPoints(ray, np.zeros(3), np.zeros(3), k, d)[0].ravel()
    assert np.allclose(corner, [639.0, 479.0], atol=0.5)            # that ray images at the corner
    assert gates.distortion_px(k, [-0.05, 0, 0, 0, 0], "plumb_bob", hw) < px
    text = gates.distortion_warning(k, d, "plumb_bob", hw)
    assert f"{px:.1f} px" in text and "image_rect" in text
    assert "moves pixels" in gates.distortion_warning(k, [0.0] * 4, "equidistant", hw)   # fisheye: never pinhole
    check = gates.DistortionCheck()    # once per distortion: a camera repeats its camera_info with every frame
    assert check(k.ravel(), d, "plumb_bob", hw) == (text, True) and check(k.ravel(), d, "plumb_bob", hw)[1] is False
    assert check(k.ravel(), [0.0] * 5, "plumb_bob", hw) == (None, True)
    for d, model in [([0.1] * 5, "kannala"), ([0.1] * 20, "plumb_bob"), ([float("nan")] * 5, "plumb_bob"),
                     ([0.1] * 5, "x" * 100_000)]:
        text = gates.distortion_warning(k, d, model, hw)
        assert "can judge" in text and len(text) < 400, text


def test_same_aspect_and_clip():
    assert gates.same_aspect((480, 640), (240, 320)) and gates.same_aspect((480, 640), (481, 640))
    assert not gates.same_aspect((480, 640), (480, 480)) and not gates.same_aspect((0, 1), (0, 1))
    long = "x" * 100_000
    c = gates.clip(long)
    assert len(c) < 100 and "100000 chars" in c and gates.clip("abc") == "'abc'"


def _products(ctrl, objects=(), positions=None):
    fld = types.SimpleNamespace(ctrl_pts=ctrl, ctrl_conf=np.ones(ctrl.shape[:-1], np.float32),
                                frame_times=np.linspace(0, 1, ctrl.shape[0], dtype=np.float32), intrinsics=None)
    tr = None
    if positions is not None:
        m = positions.shape[0]
        tr = types.SimpleNamespace(ctrl=positions, positions=positions, forecast=positions[:, :0],
                                   uv=np.zeros((m, 2), np.float32), confidence=np.ones(m, np.float32),
                                   ctrl_conf=np.ones(positions.shape[:2], np.float32),
                                   forecast_conf=np.zeros((m, 0), np.float32))
    return types.SimpleNamespace(field=fld, scale=1.0, tracks=tr, objects=list(objects))


def test_output_gate():
    ok = np.full((2, 4, 3, 5, 3), 2.0, np.float32)
    assert gates.products_problem(_products(ok, positions=np.full((7, 2, 3), 2.0, np.float32)), 40.0) is None
    nan = ok.copy()
    nan[1, 2, 0, 0, 1] = np.nan
    assert gates.products_problem(_products(nan), 40.0)[0] == "implausible_output"
    far = ok.copy()
    far[0, 0, 0, 0, 2] = 1e37  # the absurd depth, scaled into the field
    bad = gates.products_problem(_products(far), 40.0)
    assert bad[0] == "implausible_output" and "field.ctrl_pts" in bad[1]
    tr = np.full((7, 2, 3), 2.0, np.float32)
    tr[3, 1] = (0.0, 0.0, 1200.0)  # the 1200 m track
    assert "tracks" in gates.products_problem(_products(ok, positions=tr), 40.0)[1]
    obj = types.SimpleNamespace(centroid=np.array([0, 0, np.inf]), velocity=np.zeros(3), trajectory=np.zeros((2, 3)),
                                forecast=np.zeros((0, 3)), confidence=1.0)
    assert "object.centroid" in gates.products_problem(_products(ok, objects=[obj]), 40.0)[1]


def test_depth_range_mask():
    d = np.array([0.01, 0.5, 3.0, 25.0, 1e37, np.nan, np.inf, -1.0], np.float32)
    assert gates.depth_range_valid(d, 0.05, 20.0).tolist() == [False, True, True, False, False, False, False, False]
