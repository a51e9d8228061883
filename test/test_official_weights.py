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

"""The official checkpoint from a user's disk (marker ``official_weights``).

``trace_anything.pt`` (2.59 GB, CC BY-NC 4.0) is never bundled or downloaded: set ``TRACE_ANYTHING_WEIGHTS`` to the
file to run these tests; without it they are skipped with that reason. They need ~8 GB of RAM and take about a
minute on a CPU. What runs without the weights, on every machine: the official preset against the official key list
(test_model_checkpoint.py::test_official_preset_matches_schema), official-format loading with aliases / ``net.``
prefix / ``state_dict`` wrapper (test_official_format_loads), and the official architecture's numerics on the parity
fixture (test_model_parity.py).

With the user's file:
1. its keys and shapes are the official schema (``../shared/fixtures/trace_anything_schema/official_state_dict.tsv``,
   read from the file itself, not through our loader): every canonical tensor present (under its name or an alias),
   every alias pair equal, nothing unknown but the local head (which the released model does not use);
2. our loader infers the ``official`` preset from it and loads it strictly (647,555,627 parameters);
3. the node's torch engine runs it on real frames (the parity fixture's three ``vtest.avi`` frames) at 288x512 (the
   official long side 512): a field of the official shape, finite, and the encoder-token cache a live node uses for
   overlapping windows gives bit-identical output (the same window predicted twice, the second from cached tokens).
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

pytestmark = pytest.mark.official_weights

ENV = "TRACE_ANYTHING_WEIGHTS"
OFFICIAL_PARAMS = 647_555_627
LOCAL_HEAD = ("ds_head_local.", "local_head.")


@pytest.fixture(scope="module")
def weights() -> pathlib.Path:
    path = pathlib.Path(os.environ[ENV])   # conftest skips the marker when the variable or the file is missing
    return path


@pytest.fixture(scope="module")
def schema(fixtures_dir):
    path = fixtures_dir / "trace_anything_schema" / "official_state_dict.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rows = [ln.split("\t") for ln in path.read_text().splitlines() if not ln.startswith("#")][1:]
    return {k: (tuple(json.loads(s)), a) for k, s, a in rows}


def test_file_matches_the_official_schema(weights, schema):
    torch = pytest.importorskip("torch")
    obj = torch.load(str(weights), map_location="cpu", weights_only=True, mmap=True)
    sd = obj["state_dict"] if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) else obj
    if all(k.startswith("net.") for k in sd):
        sd = {k[4:]: v for k, v in sd.items()}
    unknown = [k for k in sd if k not in schema and not k.startswith(LOCAL_HEAD)]
    assert not unknown, f"{len(unknown)} keys not in the official schema, e.g. {unknown[:5]}"
    wrong = [(k, tuple(v.shape), schema[k][0]) for k, v in sd.items() if k in schema and tuple(v.shape) != schema[k][0]]
    assert not wrong, wrong[:5]
    aliases = {}
    for k, (_, alias_of) in schema.items():
        aliases.setdefault(alias_of or k, []).append(k)
    missing = [c for c, names in aliases.items() if not any(n in sd for n in names)]
    assert not missing, f"{len(missing)} official tensors absent, e.g. {missing[:5]}"
    unequal = [c for c, names in aliases.items()
               if len([n for n in names if n in sd]) > 1
               and not all(torch.equal(sd[n], sd[[m for m in names if m in sd][0]]) for n in names if n in sd)]
    assert not unequal, unequal[:5]
    n = sum(int(np.prod(schema[c][0])) for c in aliases)
    assert n == OFFICIAL_PARAMS


@pytest.fixture(scope="module")
def engine(weights):
    pytest.importorskip("torch")
    from trace_anything_ros.model.engine import create_estimator
    est = create_estimator({"weights": str(weights), "input_size": [288, 512], "threads": os.cpu_count() or 1})
    yield est
    est.close()


def test_loads_strictly_as_the_official_preset(weights):
    from trace_anything_ros.model.checkpoint import read_checkpoint
    from trace_anything_ros.model.config import OFFICIAL
    _, report = read_checkpoint(str(weights))
    assert report.ok and report.config_source == "inferred from shapes", report
    assert report.config.to_dict() == {**OFFICIAL.to_dict(), "name": report.config.name}
    assert report.param_count == OFFICIAL_PARAMS
    assert not report.missing and not report.mismatched and all(k.startswith(LOCAL_HEAD) for k in report.unexpected)


def test_engine_runs_real_frames_and_the_token_cache_is_exact(engine, fixtures_dir):
    path = fixtures_dir / "trace_anything_parity" / "inputs.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    frames_src = np.load(path)["frames_src_uint8"]            # vtest.avi frames 100, 106, 112, 576x768 RGB
    from trace_anything_ros.model.preprocess import prepare_frame
    frames = np.stack([prepare_frame(f, (288, 512)) for f in frames_src])
    assert engine.num_ctrl == 10 and tuple(engine.input_size) == (288, 512)
    a = engine.predict(frames, frame_keys=["f100", "f106", "f112"])
    assert engine.last_stats["cache_hits"] == 0
    b = engine.predict(frames, frame_keys=["f100", "f106", "f112"])
    assert engine.last_stats["cache_hits"] == 3
    assert a.ctrl_pts.shape == (3, 10, 288, 512, 3) and a.ctrl_conf.shape == (3, 10, 288, 512)
    assert np.isfinite(a.ctrl_pts).all() and np.isfinite(a.ctrl_conf).all() and np.isfinite(a.frame_times).all()
    np.testing.assert_array_equal(a.ctrl_pts, b.ctrl_pts)
    np.testing.assert_array_equal(a.ctrl_conf, b.ctrl_conf)
    np.testing.assert_array_equal(a.frame_times, b.frame_times)
