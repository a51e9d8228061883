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

"""The depth-aware compact variant: its geometry inputs (``model.geometry``), the gated curve composition
(``network.GeometryHead``), the engine path, and what is refused (ONNX export, missing inputs)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trace_anything_ros.field.camera import backproject, default_intrinsics, project  # noqa: E402
from trace_anything_ros.model import geometry  # noqa: E402
from trace_anything_ros.model.network import TraceAnythingNet, default_times, smooth_fit_matrix  # noqa: E402

H, W = 48, 64


def _texture(rng, h, w):
    import cv2
    t = rng.integers(0, 256, (h // 4, w // 4, 3)).astype(np.uint8)
    return cv2.resize(t, (w, h), interpolation=cv2.INTER_CUBIC)


def _moving_square(n=4, step=2, size=14, seed=0):
    """A textured square sliding ``step`` px right per frame over a static textured background."""
    rng = np.random.default_rng(seed)
    bg = _texture(rng, H, W)
    fg = _texture(rng, size, size)
    frames = []
    for i in range(n):
        f = bg.copy()
        x = 10 + step * i
        f[16:16 + size, x:x + size] = fg
        frames.append(f)
    return np.stack(frames)


def test_flow_chained_samples_follow_a_moving_object_and_static_pixels_stay():
    frames = _moving_square()
    depth = np.full((4, H, W), 2.0, np.float32)
    K = default_intrinsics(H, W)
    g = geometry.compute(frames, depth, K)
    assert g.aux.shape == (4, geometry.AUX_CHANNELS, H, W) and g.samples.shape == (4, 4, H, W, 3)
    assert np.allclose(g.x0[0], backproject(depth[0], K), atol=1e-5)
    for i in range(4):
        assert np.array_equal(g.samples[i, i], g.x0[i])
    # interior of the square in frame 0 (away from its edges): projected samples move 2 px per frame
    uv, _ = project(g.samples[0].astype(np.float64), K)                      # [N, H, W, 2]
    inner = (slice(19, 27), slice(13, 21))
    for j in range(1, 4):
        du = uv[j][inner][..., 0] - np.arange(W)[inner[1]][None]
        assert abs(np.median(du) - 2.0 * j) < 0.5, (j, np.median(du))
    # background far from the square: no motion, and the motion cue is small there and large on the square
    far = (slice(0, 10), slice(40, 64))
    assert np.abs(g.samples[0, 3][far] - g.x0[0][far]).max() < 0.02
    assert g.aux[0, 6][inner].mean() > 5 * max(g.aux[0, 6][far].mean(), 1e-3)


def test_camera_poses_move_points_into_the_reference_camera_and_no_depth_uses_the_unit_plane():
    frames = _moving_square()
    depth = np.full((4, H, W), 1.5, np.float32)
    K = default_intrinsics(H, W)
    T = np.tile(np.eye(4), (4, 1, 1))
    T[:, 0, 3] = [0.0, 0.1, 0.2, 0.3]
    g = geometry.compute(frames, depth, K, T)
    assert np.allclose(g.x0[2] - backproject(depth[2], K), [0.2, 0.0, 0.0], atol=1e-5)
    g2 = geometry.compute(frames, None, None)
    assert not g2.has_depth and np.allclose(g2.x0[..., 2], 1.0) and not g2.aux[:, 1].any()


def test_smooth_fit_matrix_keeps_constants_and_lines():
    t = torch.tensor([[0.0, 0.27, 0.61, 1.0]])
    M = smooth_fit_matrix(t, 10)
    assert torch.allclose(M.sum(-1), torch.ones(1, 10), atol=1e-5)
    from trace_anything_ros.field.basis import basis_matrix
    x = np.array([0.0, 0.27, 0.61, 1.0]) * 3.0 + 1.0           # a line through the samples
    ctrl = (M[0].double().numpy() @ x)
    back = basis_matrix(t[0].numpy(), 10) @ ctrl
    assert np.allclose(back, x, atol=1e-3)


def _tiny_geo_model(gate_bias: float):
    from trace_anything_ros.train.loop import model_config
    torch.manual_seed(0)
    m = TraceAnythingNet(model_config("tiny-rgbd", (H, W), 4)).eval()
    m.geometry_head.gate_threshold = None      # the soft gate, as trained
    D = m.cfg.num_ctrl
    last = m.ds_head_track.dpt.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[4 * D] = gate_bias
    return m


def _geo(frames, depth, K):
    g = geometry.compute(frames, depth, K)
    from trace_anything_ros.model.preprocess import normalize
    return normalize(frames)[None], {"aux": torch.from_numpy(g.aux)[None], "x0": torch.from_numpy(g.x0)[None],
                                     "samples": torch.from_numpy(g.samples)[None]}, g


def test_closed_gate_gives_the_measured_point_exactly_and_open_gate_follows_the_samples():
    frames = _moving_square()
    depth = np.random.default_rng(1).uniform(0.8, 2.0, (4, H, W)).astype(np.float32)
    K = default_intrinsics(H, W)
    images, geo, g = _geo(frames, depth, K)
    with torch.no_grad():
        pts, conf, t_hat = _tiny_geo_model(-60.0)(images, default_times(1, 4), geo)
    assert pts.shape == (1, 4, 10, H, W, 3) and conf.shape == (1, 4, 10, H, W)
    # static: the measured point (to ~1e-26: sigmoid(-60) times the flow offset)
    assert torch.allclose(pts[0], torch.from_numpy(g.x0)[:, None].expand_as(pts[0]), rtol=0, atol=1e-20)
    with torch.no_grad():
        pts, _, t_hat = _tiny_geo_model(60.0)(images, default_times(1, 4), geo)
    from trace_anything_ros.model.network import evaluate_tracks
    tr, _ = evaluate_tracks(pts, torch.ones(pts.shape[:-1]), t_hat)            # [1, N, N, H, W, 3]
    err = (tr[0] - torch.from_numpy(g.samples)).norm(dim=-1)
    assert float(err.median()) < 0.02 * float(torch.from_numpy(depth).median())


def test_engine_runs_the_depth_aware_model_and_onnx_export_is_refused(tmp_path):
    from trace_anything_ros.model.engine import TorchEngine
    from trace_anything_ros.model.onnx_export import export_onnx
    m = _tiny_geo_model(0.0)
    eng = TorchEngine(m, (H, W))
    assert eng.needs_intrinsics
    frames = _moving_square()
    K = default_intrinsics(H, W)
    depth = np.full((4, H, W), 1.2, np.float32)
    depth[0, :5, :5] = np.nan                                   # holes are filled, never propagated
    p = eng.predict(frames, depth=depth, intrinsics=K)
    assert p.ctrl_pts.shape == (4, 10, H, W, 3) and np.isfinite(p.ctrl_pts).all()
    assert eng.last_stats["geometry_s"] > 0
    p2 = eng.predict(frames)                                    # a plain video: the unit plane
    assert np.isfinite(p2.ctrl_pts).all()
    with pytest.raises(ValueError, match="depth-aware"):
        export_onnx(m, str(tmp_path / "m.onnx"), 4, (H, W))
    with pytest.raises(ValueError, match="geo="):
        m(torch.zeros(1, 4, 3, H, W), default_times(1, 4))


def test_config_round_trips_and_rejects_inconsistent_channels():
    from trace_anything_ros.model.config import ModelConfig
    from trace_anything_ros.train.loop import model_config
    cfg = model_config("tiny-rgbd", (H, W), 4)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="in_chans"):
        replace(cfg, encoder=replace(cfg.encoder, in_chans=3))
    with pytest.raises(ValueError, match="geometry"):
        replace(cfg, geometry="lidar")


def test_hard_gate_at_inference_is_exact_for_static_points_and_soft_in_training():
    frames = _moving_square()
    depth = np.full((4, H, W), 1.3, np.float32)
    images, geo, g = _geo(frames, depth, default_intrinsics(H, W))
    m = _tiny_geo_model(2.0)                                   # sigmoid(2) = 0.88: below a 0.98 threshold
    m.geometry_head.gate_threshold = 0.98
    with torch.no_grad():
        pts, _, _ = m(images, default_times(1, 4), geo)
    assert torch.equal(pts[0], torch.from_numpy(g.x0)[:, None].expand_as(pts[0]))
    m.train()                                                  # training ignores the threshold: soft gate
    pts_t, _, _ = m(images, default_times(1, 4), geo)
    assert not torch.allclose(pts_t[0], torch.from_numpy(g.x0)[:, None].expand_as(pts_t[0]))
