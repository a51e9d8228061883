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

"""Training code: ground-truth windows, losses, a few optimisation steps, checkpoint/resume.

Everything runs on tiny configs at 48x64 with windows rendered from the MuJoCo scenes (``sim`` marker: skipped
with a reason where MuJoCo cannot render).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trace_anything_ros.train import dataset as ds  # noqa: E402
from trace_anything_ros.train.losses import LossWeights, compute_losses  # noqa: E402

pytestmark = pytest.mark.sim

SPEC = ds.WindowSpec(frames=4, height=48, width=64, windows_per_scene=1)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread avoids OpenMP spin-waits on a loaded 2-core machine (much faster here)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("train_cache"))
    # seed 1: moving camera, seed 4: busy (moving camera + 4 moving objects), seed 0: static camera tabletop
    paths = ds.build_cache([0, 1, 4], SPEC, d, progress=False)
    return d, paths


def _perfect_prediction(sample, num_ctrl=10):
    """Control points fitted to the GT tracks (what a perfect network would output)."""
    f = ds.trajectory_field(sample, num_ctrl=num_ctrl)
    pts = torch.from_numpy(f.ctrl_pts)[None]
    conf = torch.ones(pts.shape[:-1])
    return pts, conf, torch.from_numpy(sample["times"])[None]


def test_gt_windows_are_consistent(cache):
    _, paths = cache
    s = ds.load_window(paths[2])                       # busy scene: camera and objects move
    assert str(s["preset"]) == "busy"
    tr = ds.gt_tracks(s)
    n = tr.shape[0]
    # a frame's track at its own time is the back-projected depth, in the reference camera
    for i in range(n):
        z_ref = np.linalg.inv(s["ref_T_cam"][i].astype(np.float64))
        Xc = tr[i, i].reshape(-1, 3) @ z_ref[:3, :3].T + z_ref[:3, 3]
        ok = s["valid"][i].reshape(-1)
        np.testing.assert_allclose(Xc[ok, 2], s["depth"][i].reshape(-1)[ok], atol=1e-4)
    assert s["times"][0] == 0 and s["times"][-1] == 1 and np.all(np.diff(s["times"]) > 0)
    assert 0.001 < s["dynamic"].mean() < 0.5           # some, not all, pixels move
    # static points do not move in the reference frame even though the camera does
    static = s["valid"] & ~s["dynamic"]
    disp = np.linalg.norm(s["gt_disp"].astype(np.float32), axis=-1).max(axis=1)
    assert disp[static].max() <= ds.DYNAMIC_THRESHOLD_M
    # correspondences: the matched pixel of frame j sees (nearly) the same point at t_j (nearest-pixel rounding)
    idx, ok = ds.correspondences(s)
    assert ok.mean() > 0.5 and not ok[np.arange(n), np.arange(n)].any()
    for i, j in [(0, 3), (3, 0), (1, 2)]:
        a = tr[i, j].reshape(-1, 3)[ok[i, j]]
        b = tr[j, j].reshape(-1, 3)[idx[i, j][ok[i, j]]]
        dist = np.linalg.norm(a - b, axis=1)
        assert np.median(dist) < 0.03, (i, j, np.median(dist))


def test_flip_is_a_consistent_mirror(cache):
    _, paths = cache
    s = ds.load_window(paths[1])
    f = ds.flip_sample(s)
    W = s["images"].shape[2]
    np.testing.assert_array_equal(f["images"][:, :, 0], s["images"][:, :, W - 1])
    a, b = ds.gt_tracks(s), ds.gt_tracks(f)
    np.testing.assert_allclose(b[..., 0][..., ::-1], -a[..., 0], atol=1e-6)
    np.testing.assert_allclose(b[..., 1:][:, :, :, ::-1], a[..., 1:], atol=1e-6)
    # the mirrored world is still seen consistently by the mirrored cameras: same correspondence count,
    # and a flipped frame's own-time points project to their own pixels
    _, ok_s = ds.correspondences(s)
    _, ok_f = ds.correspondences(f)
    assert abs(int(ok_s.sum()) - int(ok_f.sum())) <= 0.01 * ok_s.sum()
    K = f["K"].astype(np.float64)
    T = np.linalg.inv(f["ref_T_cam"][2].astype(np.float64))
    X = b[2, 2] @ T[:3, :3].T + T[:3, 3]
    u = K[0, 0] * X[..., 0] / X[..., 2] + K[0, 2]
    np.testing.assert_allclose(u[f["valid"][2]], np.broadcast_to(np.arange(W), u.shape)[f["valid"][2]], atol=1e-2)


def test_losses_zero_for_perfect_field_and_scale_invariant(cache):
    _, paths = cache
    s = ds.load_window(paths[2])
    batch = {k: v[None] for k, v in ds.to_torch(s).items()}
    pts, conf, t = _perfect_prediction(s)
    good = compute_losses(pts, conf, t, batch)
    assert float(good["epe"]) < 2e-3 and float(good["time"]) < 1e-6
    assert float(good["static"]) < 1e-3 and float(good["motion"]) < 2e-3
    scaled = compute_losses(pts * 3.7, conf, t, batch)
    assert abs(float(scaled["epe"]) - float(good["epe"])) < 1e-5
    # a static-everywhere field (own-time positions held) is worse, most on the dynamic pixels
    own = batch["gt_tracks"][0, torch.arange(4), torch.arange(4)]          # [N, H, W, 3]
    frozen = own[:, None].expand(4, 10, *own.shape[1:]).clone()[None]
    bad = compute_losses(frozen, conf, t, batch)
    assert float(bad["epe"]) > 1e-4 and float(bad["epe"]) > 100 * float(good["epe"])
    assert float(bad["epe_dyn"]) > 10 * float(bad["epe"])                 # the error sits on the movers
    assert float(bad["static"]) < 1e-6                                    # ...but static pixels are perfect
    assert float(bad["motion_epe_dyn"]) > 10 * float(good["motion_epe_dyn"]) + 1e-3
    noisy = compute_losses(pts + 0.05 * torch.randn_like(pts), conf, t, batch)
    assert float(noisy["corr"]) > float(good["corr"]) and float(noisy["loss"]) > float(good["loss"])
    wrong_t = compute_losses(pts, conf, torch.tensor([[0.0, 0.5, 0.5, 1.0]]), batch)
    assert float(wrong_t["time"]) > 0.01


def _tiny_cfg(tmp, cache_dir, **kw):
    from trace_anything_ros.train.loop import TrainConfig
    base = dict(preset="tiny", steps=4, batch=2, lr=2e-3, warmup=0, frames=4, size=(48, 64), ckpt_every=2,
                val_every=2, val_windows=1, out_dir=str(tmp), cache_dir=cache_dir, num_scenes=3,
                windows_per_scene=1, val_fraction=0.34, seed=3, threads=1, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _assert_steps_lower_the_loss(model, batch, lr: float, steps: int):
    from trace_anything_ros.train.loop import forward_losses
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    w = LossWeights()
    with torch.no_grad():
        before = {k: float(v) for k, v in forward_losses(model, batch, w).items()}
    for _ in range(steps):
        out = forward_losses(model, batch, w)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    with torch.no_grad():
        after = {k: float(v) for k, v in forward_losses(model, batch, w).items()}
    assert np.isfinite(after["loss"])
    assert after["loss"] < before["loss"] - 0.01, (before, after)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(cache):
    from trace_anything_ros.train.loop import build_model
    d, paths = cache
    torch.manual_seed(0)
    cfg = _tiny_cfg("unused", d)
    model, _ = build_model(cfg)
    batch = ds.collate([ds.to_torch(ds.load_window(p)) for p in paths[:2]])
    _assert_steps_lower_the_loss(model, batch, lr=3e-3, steps=5)


def test_checkpoint_resume_continues_with_identical_state(cache, tmp_path):
    from trace_anything_ros.model.checkpoint import load_model, read_checkpoint
    from trace_anything_ros.train.loop import build_model, load_state, train
    d, _ = cache
    full = train(_tiny_cfg(tmp_path / "full", d, steps=3))
    part = train(_tiny_cfg(tmp_path / "part", d, steps=3, max_minutes=0.0))   # stops after its first step
    assert part["step"] == 1 and part["stopped_early"]
    # the saved state is exactly the state in memory
    sd, rep = read_checkpoint(str(tmp_path / "part" / "last.safetensors"))
    for k, v in part["model"].state_dict().items():
        if k in sd:
            assert torch.equal(sd[k], v), k
    fresh, _ = build_model(_tiny_cfg(tmp_path / "x", d))
    assert load_state(fresh, None, None, str(tmp_path / "part")) == 1
    for k, v in part["model"].state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    # resuming continues the step count and reproduces the uninterrupted run
    resumed = train(_tiny_cfg(tmp_path / "part", d, steps=3), resume=True)
    assert resumed["step"] == 3
    for k, v in full["model"].state_dict().items():
        torch.testing.assert_close(resumed["model"].state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)
    rows = [r for r in __import__("csv").DictReader(open(tmp_path / "part" / "log.csv")) if r["kind"] == "train"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    with open(tmp_path / "part" / "log.json") as f:
        assert json.load(f)["step"] == 3
    # our checkpoint loads through the model package with its embedded config
    m, rep = load_model(str(tmp_path / "part" / "last.safetensors"))
    assert rep.config.name == "tiny" and rep.config_source == "metadata"
    assert os.path.exists(tmp_path / "part" / "curves.png")


def test_cli_parses_and_rejects_bad_size(tmp_path, capsys):
    import argparse
    from trace_anything_ros.train import cli
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    args = p.parse_args(["--preset", "tiny", "--size", "50", "64", "--out", str(tmp_path), "--device", "cpu"])
    assert cli.main(args) == 2
    args = p.parse_args(["--preset", "compact", "--steps", "7", "--lr", "1e-4", "--frames", "3", "--device", "cpu"])
    c = cli.config_from_args(args)
    assert (c.steps, c.lr, c.frames, c.preset, c.device) == (7, 1e-4, 3, "compact", "cpu")


def test_evaluation_metrics_on_perfect_and_frozen_fields(tmp_path):
    from trace_anything_ros.train import evaluate as ev
    # full model resolution: the mask rule's clean-up (opening, min area) needs objects of more than a few pixels
    paths = ev.held_out_paths(windows_per_scene=1, cache_dir=str(tmp_path), seeds=[4, 100004])
    per_good, per_frozen = [], []
    for p in paths:
        s = ds.load_window(p)
        f = ds.trajectory_field(s)
        conf = np.full_like(f.ctrl_conf, 2.0)
        per_good.append(ev.window_metrics(f.ctrl_pts * 0.3, conf, s["times"], s))       # up to scale
        own = ds.gt_tracks(s)[np.arange(4), np.arange(4)]
        frozen = np.repeat(own[:, None], f.num_ctrl, axis=1)
        per_frozen.append(ev.window_metrics(frozen, conf, np.linspace(0, 1, 4), s))
    good, frozen = ev.aggregate(per_good), ev.aggregate(per_frozen)
    assert good["epe"] < 2e-3 and good["motion_epe_dyn"] < 2e-3
    assert good["static_gt_epe_dyn"] > 5e-3                     # there is motion to find
    assert good["mask_iou"] > 0.7
    assert good["time_mae"] < 1e-6 < good["time_mae_uniform"]
    # the frozen field IS the static baseline
    assert abs(frozen["epe_dyn"] - frozen["static_gt_epe_dyn"]) < 1e-6
    assert abs(frozen["ratio_motion_epe_dyn_vs_static"] - 1.0) < 1e-6
    assert frozen["mask_iou"] == 0.0


def test_depth_aware_preset_a_few_steps_lower_the_loss(cache):
    """The depth-aware variant (``tiny-rgbd``: geometry inputs from ``model.geometry``) trains on the same
    windows, with and without depth (the 2.5D target)."""
    from trace_anything_ros.train.loop import build_model
    d, paths = cache
    torch.manual_seed(0)
    model, _ = build_model(_tiny_cfg("unused", d, preset="tiny-rgbd"))
    assert model.geometric
    s0 = ds.load_window(paths[0])                      # seed 0: static camera
    assert ds.static_camera(s0) and not ds.static_camera(ds.load_window(paths[1]))
    items = [ds.to_torch(ds.add_geometry(s0)), ds.to_torch(ds.add_geometry(ds.without_depth(s0)))]
    batch = ds.collate(items)
    assert batch["geo_aux"].shape == (2, 4, 7, 48, 64) and batch["geo_samples"].shape == (2, 4, 4, 48, 64, 3)
    _assert_steps_lower_the_loss(model, batch, lr=1e-3, steps=6)   # 3e-3 spikes the confidence here


def test_without_depth_target_keeps_every_pixels_image_motion(cache):
    """The 2.5D target (trajectories scaled by 1 / own depth) projects to exactly the same pixels at every time."""
    from trace_anything_ros.field.camera import project
    _, paths = cache
    s = ds.load_window(paths[0])
    t = ds.without_depth(s)
    a, b = ds.gt_tracks(s), ds.gt_tracks(t)
    m = np.broadcast_to(s["valid"][:, None], a.shape[:-1])
    uv_a, _ = project(a.astype(np.float64), s["K"].astype(np.float64))
    uv_b, zb = project(b.astype(np.float64), s["K"].astype(np.float64))
    assert np.abs(uv_a - uv_b)[m].max() < 0.05
    own = np.stack([b[i, i] for i in range(b.shape[0])])[..., 2]
    assert np.allclose(own[s["valid"]], 1.0, atol=2e-3)      # every pixel on the unit plane at its own time


def test_adapt_rgb_checkpoint_to_depth_aware_keeps_shared_weights(cache, tmp_path):
    """Fine-tuning path of the shipped model: an RGB-only checkpoint initialises the depth-aware preset."""
    from trace_anything_ros.model.checkpoint import save_checkpoint as save_model
    from trace_anything_ros.train.loop import build_model
    d, _ = cache
    rgb, _ = build_model(_tiny_cfg(tmp_path, d, preset="tiny"))
    path = str(tmp_path / "rgb.safetensors")
    save_model(rgb, path)
    model, note = build_model(_tiny_cfg(tmp_path, d, preset="tiny-rgbd", init=path))
    assert model.geometric and "depth-aware" in note
    a, b = rgb.state_dict(), model.state_dict()
    k = "decoder.dec_blocks.0.attn.qkv.weight"
    assert torch.equal(a[k], b[k])
    pe = "encoder.patch_embed.proj.weight"
    assert torch.equal(b[pe][:, :3], a[pe]) and not b[pe][:, 3:].any()
    with pytest.raises(ValueError, match="geometry"):
        geo_path = str(tmp_path / "geo.safetensors")
        save_model(model, geo_path)
        build_model(_tiny_cfg(tmp_path, d, preset="tiny", init=geo_path))
