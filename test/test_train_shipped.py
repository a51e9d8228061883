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

"""The shipped compact checkpoint: loads through the model package and reproduces its recorded held-out figures.

The figures were recorded by ``python -m trace_anything_ros.train.ship`` into
``trace_anything_ros/model/weights/compact_sim.eval.json`` (``test_subset``: two held-out scenes, one window each,
never seen in training, stored in ``compact_sim.testwindows.npz`` so that the check does not move with the
simulator). Here the checkpoint is re-evaluated on them through ``create_estimator``; the tolerance is the one
recorded with the figures (relative 5 % on 3D errors, 0.05 absolute on mask IoU, 0.01 on the time error), room
for BLAS / thread-count differences between machines.
"""
from __future__ import annotations

import json
import math
import os

import pytest

pytest.importorskip("torch")

from trace_anything_ros.train import ship  # noqa: E402


CKPT = os.path.join(ship.WEIGHTS_DIR, "compact_sim.safetensors")
RECORD = os.path.join(ship.WEIGHTS_DIR, "compact_sim.eval.json")


def test_shipped_checkpoint_is_small_and_loads_with_its_config():
    from trace_anything_ros.model.checkpoint import load_model
    from trace_anything_ros.model.network import count_parameters
    assert os.path.getsize(CKPT) <= 20 * 1024 * 1024
    with open(RECORD) as f:
        rec = json.load(f)
    assert rec["sha256"] == ship.sha256(CKPT), "checkpoint and its recorded figures do not belong together"
    model, report = load_model(CKPT)
    assert report.ok and report.config_source == "metadata"
    assert report.config.to_dict() == rec["config"]
    assert count_parameters(model) == rec["parameters"]


def test_shipped_checkpoint_reproduces_recorded_figures():
    import torch
    from trace_anything_ros.train import evaluate as ev
    with open(RECORD) as f:
        rec = json.load(f)
    sub = rec["test_subset"]
    tol = rec["tolerance"]
    windows = ev.load_windows(os.path.join(ship.WEIGHTS_DIR, sub["windows_file"]))
    assert [int(w["seed"]) for w in windows] == sub["seeds"]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = ev.evaluate(CKPT, windows, threads=1)["summary"]
    finally:
        torch.set_num_threads(n)
    want = sub["summary"]
    assert got["windows"] == want["windows"] == len(sub["seeds"])
    for k in ("epe", "epe_dyn", "motion_epe", "motion_epe_dyn", "static_model_epe"):
        assert math.isfinite(got[k])
        assert abs(got[k] - want[k]) <= tol["epe_rel"] * abs(want[k]), (k, got[k], want[k])
    # the GT-only baselines depend on rendering alone
    assert abs(got["static_gt_epe_dyn"] - want["static_gt_epe_dyn"]) <= tol["epe_rel"] * want["static_gt_epe_dyn"]
    if math.isnan(want["mask_iou"]):      # no GT and no predicted moving pixel at all
        assert math.isnan(got["mask_iou"])
    else:
        assert abs(got["mask_iou"] - want["mask_iou"]) <= tol["mask_iou_abs"], (got["mask_iou"], want["mask_iou"])
    assert abs(got["time_mae"] - want["time_mae"]) <= tol["time_mae_abs"], (got["time_mae"], want["time_mae"])
