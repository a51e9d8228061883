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

"""Parity of our network with the official architecture, on the shared fixture (config read from config.json)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trace_anything_ros.field.basis import basis_matrix_torch
from trace_anything_ros.model.config import ModelConfig
from trace_anything_ros.model.network import TraceAnythingNet, evaluate_tracks
from trace_anything_ros.model.preprocess import normalize, prepare_frame


@pytest.fixture(scope="module")
def fx(fixtures_dir):
    d = fixtures_dir / "trace_anything_parity"
    if not (d / "config.json").is_file():
        pytest.skip(f"parity fixture not found in {d}")
    from safetensors.torch import load_file
    cfg_json = json.loads((d / "config.json").read_text())
    return {
        "cfg": ModelConfig.from_official_json(cfg_json), "json": cfg_json,
        "weights": load_file(str(d / "weights.safetensors")),
        "inputs": dict(np.load(d / "inputs.npz")), "out": dict(np.load(d / "outputs.npz")),
        "out64": dict(np.load(d / "outputs_f64_sub4.npz")), "inter": dict(np.load(d / "intermediates.npz")),
    }


def err(ours, ref) -> float:
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def _model(fx, dtype=torch.float32):
    m = TraceAnythingNet(fx["cfg"]).eval()
    missing, unexpected = m.load_state_dict(fx["weights"], strict=True)
    assert not missing and not unexpected
    return m.to(dtype)


def _run(fx, dtype):
    m = _model(fx, dtype)
    images = torch.from_numpy(fx["inputs"]["images"]).to(dtype)[None]
    times = torch.from_numpy(fx["inputs"]["time_steps"])[None]
    with torch.inference_mode():
        pts, conf, t_hat = m(images, times)
        tp, tc = evaluate_tracks(pts, conf, t_hat)
    return {"ctrl_pts3d": pts[0], "ctrl_conf": conf[0], "time": t_hat[0][:, None], "track_pts3d": tp[0],
            "track_conf": tc[0]}


def test_config_read_from_json(fx):
    c, j = fx["cfg"], fx["json"]
    assert c.encoder.embed_dim == j["encoder"]["embed_dim"] and c.decoder.depth == j["decoder"]["depth"]
    assert c.hooks == j["hooks"]
    assert list(c.head.layer_dims) == j["dpt"]["layer_dims"] and c.num_ctrl == j["bspline"]["D"]
    assert abs(c.decoder.eval_scale_factor - j["decoder"]["eval_attn_scale_factor"]) < 1e-12
    assert sum(p.numel() for p in TraceAnythingNet(c).parameters()) == j["n_params"]


def test_fp32_parity(fx):
    ours = _run(fx, torch.float32)
    errs = {k: err(v, fx["out"][k]) for k, v in ours.items()}
    assert max(errs.values()) <= 5e-5, errs


def test_fp64_parity(fx):
    ours = _run(fx, torch.float64)
    ref = fx["out64"]
    errs = {
        "ctrl_pts3d": err(ours["ctrl_pts3d"][:, :, ::4, ::4], ref["ctrl_pts3d_sub4"]),
        "ctrl_conf": err(ours["ctrl_conf"][:, :, ::4, ::4], ref["ctrl_conf_sub4"]),
        "time": err(ours["time"], ref["time"]),
        "track_pts3d": err(ours["track_pts3d"][:, :, ::4, ::4], ref["track_pts3d_sub4"]),
        "track_conf": err(ours["track_conf"][:, :, ::4, ::4], ref["track_conf_sub4"]),
    }
    assert max(errs.values()) <= 5e-7, errs


def test_intermediates(fx):
    m = _model(fx)
    inter = fx["inter"]
    images = torch.from_numpy(fx["inputs"]["images"])[None]
    times = torch.from_numpy(fx["inputs"]["time_steps"])[None]
    assert m.decoder.time_index(times).tolist()[0] == fx["inputs"]["time_index"].tolist()
    blocks = {}
    hooks = [blk.register_forward_hook(lambda mod, a, out, i=i: blocks.__setitem__(i, out))
             for i, blk in enumerate(m.decoder.dec_blocks)]
    with torch.inference_mode():
        tok = m.encode(images)
        emb = m.decoder.image_idx_emb[m.decoder.time_index(times)[0]]
        m.fuse(tok, times)
        final = m.decoder.dec_norm(blocks[len(blocks) - 1])
    for h in hooks:
        h.remove()
    N, P = tok.shape[1], tok.shape[2]
    assert err(tok[0], inter["enc_tokens"]) <= 1e-5
    assert err(emb, inter["dec_time_emb"]) <= 1e-6
    depth = len(m.decoder.dec_blocks)
    for k in range(1, depth):
        assert err(blocks[k - 1].reshape(N, P, -1), inter[f"dec_block{k}_out"]) <= 1e-5, k
    assert err(final.reshape(N, P, -1), inter[f"dec_block{depth}_out"]) <= 1e-5


def test_preprocessing_normalisation_exact(fx):
    images = normalize(fx["inputs"]["frames_uint8"]).numpy()
    np.testing.assert_array_equal(images, fx["inputs"]["images"])


def test_preprocessing_resize_crop(fx):
    src, ref = fx["inputs"]["frames_src_uint8"], fx["inputs"]["frames_uint8"]
    out = np.stack([prepare_frame(f, ref.shape[1:3]) for f in src])
    assert out.shape == ref.shape
    # README: exact with PIL's antialiased bilinear (what we use); informative, so allow 1 level of rounding
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert (out == ref).mean() > 0.99


def test_basis_probe(fx):
    t = torch.from_numpy(fx["out"]["bspline_t_probe"]).double()
    basis = basis_matrix_torch(t, fx["cfg"].num_ctrl).numpy()
    assert np.abs(basis - fx["out"]["bspline_basis_probe"]).max() <= 1e-6
    pts = torch.from_numpy(fx["out"]["ctrl_pts3d"]).double()[None]
    conf = torch.from_numpy(fx["out"]["ctrl_conf"]).double()[None]
    tp, tc = evaluate_tracks(pts, conf, t[None])
    assert err(tp[0][:, :, ::4, ::4], fx["out"]["bspline_probe_pts3d_sub4"]) <= 1e-5
    assert err(tc[0][:, :, ::4, ::4], fx["out"]["bspline_probe_conf_sub4"]) <= 1e-5
