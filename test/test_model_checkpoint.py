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

"""State-dict schema (official preset vs the official key list) and checkpoint loading / refusal."""
from __future__ import annotations

import json
import os
import pickle
from types import SimpleNamespace

import pytest
import torch

from trace_anything_ros.model import cli_weights
from trace_anything_ros.model.checkpoint import (CheckpointError, build_model, canonical_name, init_pattern_,
                                                 load_model, read_checkpoint, save_checkpoint,
                                                 write_official_format)
from trace_anything_ros.model.config import COMPACT, OFFICIAL, DecoderConfig, EncoderConfig, HeadConfig, ModelConfig
from trace_anything_ros.model.network import TraceAnythingNet

SMALL = ModelConfig(encoder=EncoderConfig(embed_dim=32, depth=2, num_heads=2),
                    decoder=DecoderConfig(embed_dim=48, depth=3, num_heads=3),
                    head=HeadConfig(feature_dim=16, last_dim=8, layer_dims=(8, 16, 24, 32)), num_ctrl=7,
                    name="small-test", input_size=(48, 64))


@pytest.fixture(scope="module")
def schema(fixtures_dir):
    path = fixtures_dir / "trace_anything_schema" / "official_state_dict.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if not line.startswith("#")]
    assert rows[0] == ["key", "shape", "alias_of"]
    return [(k, tuple(json.loads(s)), a) for k, s, a in rows[1:]]


def test_official_preset_matches_schema(schema):
    with torch.device("meta"):
        m = TraceAnythingNet(OFFICIAL)
    sd = m.state_dict()
    canon = [(k, s) for k, s, a in schema if not a]
    assert list(sd.keys()) == [k for k, _ in canon]          # same names, same order
    assert all(tuple(sd[k].shape) == s for k, s in canon)
    assert sum(p.numel() for p in m.parameters()) == 647_555_627
    # no duplicate registration, no local head, time table not persistent
    assert len(list(m.named_parameters(remove_duplicate=False))) == len(list(m.named_parameters()))
    assert not any(k.startswith(("ds_head_local", "local_head", "time_head", "track_head")) for k in sd)
    assert "decoder.image_idx_emb" not in sd and tuple(m.decoder.image_idx_emb.shape) == (1000, 1024)
    for k, _, alias_of in schema:
        if alias_of:
            assert canonical_name(k) == alias_of


def test_compact_preset_size(tmp_path):
    m = TraceAnythingNet(COMPACT)
    n = sum(p.numel() for p in m.parameters())
    assert 1_000_000 <= n <= 5_000_000
    save_checkpoint(m, tmp_path / "c.safetensors")
    assert os.path.getsize(tmp_path / "c.safetensors") <= 20 * 1024 * 1024


def _small_model(seed=0):
    m = build_model(SMALL)
    return init_pattern_(m, seed=1234 + seed)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("aliases,prefix,wrapper", [(True, True, True), (False, False, False), (True, False, True)])
def test_official_format_loads(tmp_path, aliases, prefix, wrapper):
    m = _small_model()
    p = tmp_path / "trace_anything.pt"
    write_official_format(m, p, with_aliases=aliases, net_prefix=prefix, wrapper=wrapper)
    loaded, report = load_model(p, config=SMALL)
    assert _same_weights(loaded, m)
    assert (report.aliases_resolved > 0) == aliases
    assert report.prefix_stripped == ("net." if prefix else "")
    assert report.wrapper == ("state_dict" if wrapper else "plain")


def test_alias_only_names_and_local_head(tmp_path):
    m = _small_model()
    sd = {}
    for k, v in m.state_dict().items():  # only the alias names for the heads, plus a local head to ignore
        k2 = k.replace("ds_head_time.", "time_head.").replace("ds_head_track.", "track_head.")
        k2 = k2.replace("scratch.layer1_rn", "scratch.layer_rn.0")
        sd[k2] = v
        if k.startswith("ds_head_track."):
            sd[k.replace("ds_head_track.", "ds_head_local.")] = v.clone()
            sd[k.replace("ds_head_track.", "local_head.")] = v.clone()
    torch.save(sd, tmp_path / "a.pt")
    loaded, report = load_model(tmp_path / "a.pt", config=SMALL)
    assert _same_weights(loaded, m)
    assert report.ignored and all("local" in k for k in report.ignored)


def test_alias_disagreement_refused(tmp_path):
    m = _small_model()
    sd = dict(m.state_dict())
    sd["time_head.scalar_head.2.weight"] = sd["ds_head_time.scalar_head.2.weight"] + 1
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="disagrees"):
        read_checkpoint(tmp_path / "bad.pt", SMALL)


def test_our_safetensors_embeds_config(tmp_path):
    m = _small_model()
    save_checkpoint(m, tmp_path / "ours.safetensors")
    loaded, report = load_model(tmp_path / "ours.safetensors")
    assert report.config_source == "metadata" and loaded.cfg == SMALL
    assert _same_weights(loaded, m)
    x = torch.rand(1, 2, 3, 48, 64) * 2 - 1
    t = torch.tensor([[0.0, 1.0]])
    with torch.inference_mode():
        for a, b in zip(loaded(x, t), m(x, t)):
            assert torch.equal(a, b)


def _cli(path, capsys, *extra):
    parser = __import__("argparse").ArgumentParser()
    cli_weights.add_arguments(parser)
    rc = cli_weights.main(parser.parse_args([str(path), *extra]))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_check_weights_synthetic_official(tmp_path, capsys):
    m = _small_model()
    write_official_format(m, tmp_path / "trace_anything.pt")  # aliases + net. + state_dict wrapper
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(SMALL.to_dict()))
    rc, out, err = _cli(tmp_path / "trace_anything.pt", capsys, "--config", str(cfg_path), "--build")
    assert rc == 0, err
    n_params = sum(p.numel() for p in m.parameters())
    assert "missing: 0" in out and "unexpected: 0" in out and f"parameters: {n_params:,}" in out
    assert "float32" in out and "stripped prefix 'net.'" in out
    rc, out, err = _cli(tmp_path / "trace_anything.pt", capsys)  # config inferred from shapes
    assert rc == 0 and "inferred" in out


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _bad_files(tmp_path):
    m = _small_model()
    good = tmp_path / "good.pt"
    write_official_format(m, good)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.pt").write_bytes(os.urandom(4096))
    torch.save({"net.encoder.x": torch.zeros(2), "state": SimpleNamespace(a=1)}, tmp_path / "object.pt")
    with open(tmp_path / "pickle.pt", "wb") as f:
        pickle.dump(_Evil(), f)
    other = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(other.state_dict(), tmp_path / "other_arch.pt")
    wrong = dict(m.state_dict())
    wrong["encoder.enc_norm.weight"] = torch.zeros(5)
    torch.save(wrong, tmp_path / "wrong_shape.pt")
    save_checkpoint(m, tmp_path / "s.safetensors")
    sdata = (tmp_path / "s.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(sdata[: len(sdata) // 3])
    torch.save([1, 2, 3], tmp_path / "list.pt")
    return ["truncated.pt", "corrupt.pt", "object.pt", "pickle.pt", "other_arch.pt", "wrong_shape.pt",
            "truncated.safetensors", "list.pt", "does_not_exist.pt"]


def test_check_weights_refuses_in_one_line(tmp_path, capsys):
    for name in _bad_files(tmp_path):
        rc, out, err = _cli(tmp_path / name, capsys)
        assert rc != 0, name
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("check-weights: refused:"), (name, err)
        assert "Traceback" not in err and out == "", name


def test_check_weights_subprocess_no_traceback(tmp_path):
    import subprocess
    import sys
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x04garbage" * 100)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(__import__("pathlib").Path(__file__).resolve().parents[1]),
                                         env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "trace_anything_ros.cli", "check-weights", str(tmp_path / "corrupt.pt")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
