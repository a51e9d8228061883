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

"""ROS-free tests of trace_anything_ros.pipeline: ring bounds, window selection, drop counting, products.

The estimator is the analytic stand-in (``trace_anything_ros.model.analytic``: red pixels translate at a known
velocity on a plane at a known depth), not a network: the products are checked against that known field. The
networks through the same pipeline: test_node_model.py, test_camera_poses.py, test_sim_perception.py."""
import threading
import time

import numpy as np
import pytest

from trace_anything_ros.model.analytic import VELOCITY, Z, AnalyticEstimator, create
from trace_anything_ros.pipeline import (Frame, FrameIngest, PerceptionPipeline, PipelineParams, WindowSpec,
                                         WindowWorker, scale_intrinsics, select_window)
from trace_anything_ros.pipeline import frames as F

H, W = 32, 48


def frame(i, stamp_ns=None, size=(480, 640), red_at=None, depth=None):
    img = np.zeros((H, W, 3), np.uint8)
    if red_at is not None:
        img[8:20, red_at:red_at + 10] = (255, 0, 0)
    return Frame(stamp_ns=stamp_ns if stamp_ns is not None else (i + 1) * 33_000_000, rgb=img, frame_id="cam",
                 source_size=size, depth=depth)


def test_pipeline_imports_without_rclpy():
    import subprocess
    import sys
    code = ("import sys, trace_anything_ros.pipeline; "
            "assert 'rclpy' not in sys.modules, 'pipeline imported rclpy'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ring_is_bounded_and_keeps_newest():
    ing = FrameIngest(5)
    for i in range(20):
        assert ing.push(frame(i)) is None
    snap = ing.snapshot()
    assert len(snap) == 5 and [f.key for f in snap] == list(range(15, 20))
    assert ing.drops.total() == 0  # eviction from the ring is not a drop


def test_select_window_stride_and_spacing():
    frames = [frame(i) for i in range(10)]
    for i, f in enumerate(frames):
        f.key = i
    w = select_window(frames, WindowSpec(length=3, stride=2))
    assert [f.key for f in w] == [5, 7, 9]
    assert select_window(frames[:4], WindowSpec(length=3, stride=2)) is None  # incomplete
    w = select_window(frames, WindowSpec(length=3, min_spacing=0.1))  # frames are 33 ms apart -> every 4th
    assert [f.key for f in w] == [1, 5, 9]
    assert all(b.stamp - a.stamp >= 0.1 - 1e-9 for a, b in zip(w, w[1:]))


def test_stale_windows_are_dropped_and_counted_never_queued():
    ing = FrameIngest(8, window=WindowSpec(length=3))
    for i in range(10):
        ing.push(frame(i))
    # windows ending at frames 2..9 became complete (8); the worker only sees the newest one
    w = ing.take_window(timeout=0.1)
    assert [f.key for f in w] == [7, 8, 9]
    assert ing.drops[F.STALE_WINDOW] == 7
    assert ing.take_window(timeout=0.05) is None  # nothing queued behind it


def test_drop_reasons_are_recent_while_they_recur_and_forgotten_when_explained():
    """The recency both nodes' /diagnostics stay at WARN for (``DropCounter.seen`` / ``recent`` / ``forget``): a
    reason is recent within the window after it was last seen, not after; forgetting it (a confirmed stream change)
    leaves its count; a counted drop that is never reported seen (a stale window) is not recent."""
    d = F.DropCounter()
    d.add(F.ZERO_STAMP)
    d.seen(F.ZERO_STAMP, now=100.0)
    d.add(F.SIZE_CHANGE, 3)
    d.seen(F.SIZE_CHANGE, now=101.0)
    d.add(F.STALE_WINDOW)
    assert d.recent(2.0, now=101.5) == sorted([F.ZERO_STAMP, F.SIZE_CHANGE])
    assert d.recent(2.0, now=102.5) == [F.SIZE_CHANGE]
    d.forget(F.SIZE_CHANGE)
    assert d.recent(2.0, now=101.5) == [F.ZERO_STAMP] and d[F.SIZE_CHANGE] == 3 and d.total() == 5


def test_window_older_than_max_age_is_dropped():
    ing = FrameIngest(8, window=WindowSpec(length=2, max_age=0.5))
    ing.push(frame(0))
    ing.push(frame(1))
    assert ing.take_window(timeout=0.1, now=time.monotonic() + 1.0) is None
    assert ing.drops[F.STALE_AGE] == 1


@pytest.mark.parametrize("stamps,reason", [
    ([0], F.ZERO_STAMP),
    ([10**9, 10**9], F.DUPLICATE_STAMP),
    ([10**9, 10**9 - 10**7], F.NON_MONOTONIC_STAMP),
])
def test_bad_stamps_are_dropped_and_counted(stamps, reason):
    ing = FrameIngest(4)
    results = [ing.push(frame(i, stamp_ns=s)) for i, s in enumerate(stamps)]
    assert results[-1] == reason and ing.drops[reason] == 1
    assert len(ing) == len(stamps) - 1


def test_time_reset_clears_buffer_and_keeps_going():
    events = []
    ing = FrameIngest(8, time_reset_threshold=1.0, on_event=lambda k, m: events.append(k),
                      window=WindowSpec(length=2))
    for i in range(4):
        ing.push(frame(i, stamp_ns=100 * 10**9 + i * 10**8))
    assert ing.push(frame(9, stamp_ns=5 * 10**9)) is None  # 95 s backwards: a reset, frame accepted
    assert len(ing) == 1 and events == [F.TIME_RESET] and ing.drops[F.TIME_RESET] == 4
    assert ing.take_window(0.01) is None  # the stale pre-reset window is gone


def test_size_change_resets_buffer():
    events = []
    ing = FrameIngest(8, on_event=lambda k, m: events.append(m))
    ing.push(frame(0, size=(480, 640)))
    ing.push(frame(1, size=(480, 640)))
    ing.push(frame(2, size=(240, 320)))
    assert len(ing) == 1 and ing.drops[F.SIZE_CHANGE] == 2 and "640x480 to 320x240" in events[0]


def test_scale_intrinsics_maps_pixel_centres():
    k = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    k2 = scale_intrinsics(k, (480, 640), (240, 320))
    assert k2[0, 0] == pytest.approx(250) and k2[0, 2] == pytest.approx(159.5) and k2[1, 2] == pytest.approx(119.5)


def _window(n=4, depth=None):
    return [frame(i, red_at=5 + 3 * i, depth=depth) for i in range(n)]


def test_pipeline_products_shapes_stamps_and_motion():
    est = AnalyticEstimator(input_size=(H, W), num_ctrl=7)
    pp = PerceptionPipeline(est, PipelineParams(track_stride=8, forecast_samples=4, forecast_horizon=0.05,
                                                min_object_pixels=20))
    win = _window()
    for i, f in enumerate(win):
        f.key = i
    pr = pp.process(win)
    n = len(win)
    assert pr.field.ctrl_pts.shape == (n, 7, H, W, 3) and pr.field.frame_id == "cam"
    assert pr.stamps_ns == [f.stamp_ns for f in win]
    assert not pr.field.metric and pr.scale == 1.0
    assert pr.mask.shape == (H, W) and pr.mask.any() and pr.labels.dtype == np.uint16
    assert len(pr.objects) == 1
    o = pr.objects[0]
    span = (win[-1].stamp_ns - win[0].stamp_ns) * 1e-9
    np.testing.assert_allclose(o.velocity, VELOCITY / span, rtol=0.05, atol=1e-3)
    assert len(o.forecast) == 4 and len(o.forecast_stamps_ns) == 4
    assert all(s > win[-1].stamp_ns for s in o.forecast_stamps_ns)
    # tracks on an 8-pixel grid of the newest frame, uv in source pixel coordinates (640x480), plus the moving
    # object's own pixels up to tracks_per_object (16) tracks on it
    tr = pr.tracks
    grid = (H // 8) * (W // 8)
    assert len(tr) > grid and tr.positions.shape == (len(tr), n, 3)
    assert set(tr.object_id.tolist()) == {-1, o.id} and (tr.object_id == o.id).sum() == 16
    assert len(set(map(tuple, tr.uv.tolist()))) == len(tr)  # no pixel tracked twice
    assert tr.forecast.shape == (len(tr), 4, 3) and tr.uv[:, 0].max() < 640 and tr.uv[:, 1].max() < 480
    assert tr.dynamic.any() and not tr.dynamic.all()
    # a static track stays at depth Z
    static = ~tr.dynamic
    np.testing.assert_allclose(tr.positions[static][..., 2], Z, atol=1e-5)
    assert pr.timings["model"] > 0 and pr.timings["total"] >= pr.timings["model"]


def test_pipeline_metric_scale_from_depth():
    depth = np.full((H, W), 2.0 * Z, np.float32)
    depth[:4] = np.nan  # invalid pixels are ignored
    pp = PerceptionPipeline(AnalyticEstimator(input_size=(H, W)), PipelineParams(track_stride=0))
    pr = pp.process(_window(depth=depth))
    assert pr.field.metric and pr.scale == pytest.approx(2.0, rel=1e-3)
    assert pr.tracks is None


def test_worker_runs_newest_window_with_slow_model():
    est = AnalyticEstimator(input_size=(H, W), delay=0.15)
    ing = FrameIngest(16, window=WindowSpec(length=3))
    results = []
    done = threading.Event()

    def on_result(pr):
        results.append(pr)
        done.set()

    worker = WindowWorker(ing, PerceptionPipeline(est, PipelineParams(track_stride=0, compute_motion=False)),
                          on_result).start()
    try:
        for i in range(40):  # 200 Hz stream, model at ~6 Hz
            ing.push(frame(i, stamp_ns=(i + 1) * 5_000_000))
            time.sleep(0.005)
        time.sleep(0.4)
    finally:
        ing.close()
        worker.stop()
    assert 1 <= len(results) <= 5
    assert results[-1].window_keys[-1] == 39  # the newest window was processed at the end
    assert ing.drops[F.STALE_WINDOW] == ing.windows_offered - len(results)
    assert ing.drops[F.STALE_WINDOW] > 20


def test_worker_survives_estimator_failure():
    class Broken(AnalyticEstimator):
        def predict(self, *a, **k):
            raise RuntimeError("boom")

    errors = []
    ing = FrameIngest(4, window=WindowSpec(length=2))
    worker = WindowWorker(ing, PerceptionPipeline(Broken(input_size=(H, W))), lambda pr: None,
                          on_error=errors.append).start()
    try:
        for i in range(3):
            ing.push(frame(i))
            time.sleep(0.15)
        assert worker.alive and errors and worker.failures == len(errors)
    finally:
        ing.close()
        worker.stop()


def test_analytic_factory_signature_matches_model_factory():
    est = create({"input_size": [H, W], "num_ctrl": 4})
    assert est.input_size == (H, W) and est.num_ctrl == 4


def test_depth_aware_model_gets_intrinsics_depth_and_stamp_times():
    """The pipeline hands a depth-aware estimator (``needs_intrinsics``) the reference frame's K and the frames'
    measured times; the field's frame times are then the normalised stamps (non-uniform here)."""
    torch = pytest.importorskip("torch")
    from trace_anything_ros.model.engine import TorchEngine
    from trace_anything_ros.model.network import TraceAnythingNet
    from trace_anything_ros.train.loop import model_config
    torch.manual_seed(0)
    h, w = 48, 64
    eng = TorchEngine(TraceAnythingNet(model_config("tiny-rgbd", (h, w), 4)).eval(), (h, w), threads=1)
    seen = {}
    real = eng.predict

    def spy(frames, **kw):
        seen.update(kw)
        return real(frames, **kw)

    eng.predict = spy
    K = np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
    stamps = [1_000_000_000, 1_100_000_000, 1_150_000_000, 1_400_000_000]
    rng = np.random.default_rng(0)
    win = [Frame(stamp_ns=s, rgb=rng.integers(0, 255, (h, w, 3), dtype=np.uint8), frame_id="cam",
                 source_size=(h, w), depth=np.full((h, w), 1.5, np.float32), intrinsics=K, key=i)
           for i, s in enumerate(stamps)]
    pr = PerceptionPipeline(eng, PipelineParams(track_stride=0, compute_motion=False)).process(win)
    np.testing.assert_array_equal(seen["intrinsics"], K)
    assert seen["depth"].shape == (4, h, w)
    want = (np.array(stamps) - stamps[0]) / (stamps[-1] - stamps[0])
    np.testing.assert_allclose(seen["times"], want, atol=1e-6)
    np.testing.assert_allclose(pr.field.frame_times, want, atol=1e-6)
    assert pr.field.metric and np.isfinite(pr.field.ctrl_pts).all()


def test_track_object_ids_are_the_published_object_ids():
    """Tracks carry the (tracked) object ids of ~/dynamic_objects, not the window's instance labels: with the
    tracker's next id at 7 the one object is object 7 (label 1) and so are its tracks. Without per-object
    samples only the grid points on it are tracks."""
    est = AnalyticEstimator(input_size=(H, W), num_ctrl=7)
    for per_object, expect in ((16, 16), (0, None)):
        pp = PerceptionPipeline(est, PipelineParams(track_stride=8, forecast_samples=0, min_object_pixels=20,
                                                    tracks_per_object=per_object))
        pp._tracker._next_id = 7
        win = _window()
        for i, f in enumerate(win):
            f.key = i
        pr = pp.process(win)
        assert [o.id for o in pr.objects] == [7]
        on = pr.tracks.object_id == 7
        assert set(pr.tracks.object_id.tolist()) == {-1, 7}
        assert on.sum() == (expect if expect is not None else (pr.labels[4::8, 4::8] == 7).sum())
        assert np.all(pr.tracks.dynamic[on])
