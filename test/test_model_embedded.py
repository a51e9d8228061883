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

"""The embedded default: `model.weights: embedded` (the node's default) loads the compact checkpoint shipped in the
package; an install without it fails with one clear error instead of silently running random weights."""
import numpy as np
import pytest

from trace_anything_ros.model import engine


def test_embedded_resolves_to_the_shipped_checkpoint_and_predicts():
    est = engine.create_estimator({"weights": "embedded", "threads": 1})
    assert "compact_sim.safetensors" in est.description and "random" not in est.description
    h, w = est.input_size
    frames = np.random.default_rng(0).integers(0, 255, (2, h, w, 3), dtype=np.uint8)
    pred = est.predict(frames)
    assert pred.ctrl_pts.shape[:3] == (2, est.num_ctrl, h) and np.isfinite(pred.ctrl_pts).all()


def test_node_and_config_default_to_the_embedded_weights(repo_root):
    import yaml
    from trace_anything_ros.ros.params import PERCEPTION
    spec = {s.name: s for s in PERCEPTION}["model.weights"]
    assert spec.default == engine.EMBEDDED
    cfg = yaml.safe_load(open(repo_root / "config" / "perception.yaml"))
    assert cfg["trajectory_field_node"]["ros__parameters"]["model.weights"] == engine.EMBEDDED


def test_missing_embedded_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(engine, "EMBEDDED_WEIGHTS", str(tmp_path / "absent.safetensors"))
    with pytest.raises(FileNotFoundError, match="embedded weights .* missing"):
        engine.create_estimator({"weights": "embedded"})


def test_empty_weights_still_means_random_preset_weights():
    assert engine.resolve_weights("") is None and engine.resolve_weights(None) is None
    assert engine.resolve_weights("/x/y.pt") == "/x/y.pt"
