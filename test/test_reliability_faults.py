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

"""Faults: bad model files, a model that raises mid-run, camera stop/restart, time jumps, invalid runtime parameters.

One trajectory_field_node process for the module (separate process, real DDS), tests in file order. The node's
stdout/stderr goes to a file so the tests can count log lines. Its model is the analytic stand-in with an
injected fault (test/faulty_estimator.py: the 3rd predict call raises) until a test loads a checkpoint file.
Not duplicated here (see test_node_perception.py / test_planner_node.py): bad image messages, size change, the
time-reset counter, stale WARN alone, planner HALTED on stale perception.
"""
import subprocess
import sys
import time

import pytest

from ros_helpers import node_env, node_under_test
from test_node_perception import Harness

pytestmark = pytest.mark.ros

NODE = "/trajectory_field_node"
IN_H, IN_W = 64, 96


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Small checkpoints written with the model package: good (safetensors, ours), truncated, wrong architecture
    (official-format .pt of a different width), wrong dtype (int32 weights), missing path."""
    import dataclasses

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from trace_anything_ros.model.checkpoint import save_checkpoint
    from trace_anything_ros.model.config import COMPACT
    from trace_anything_ros.model.network import TraceAnythingNet
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    save_checkpoint(TraceAnythingNet(COMPACT), str(d / "good.safetensors"))
    data = (d / "good.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(data[: len(data) // 3])
    meta = safe_open(str(d / "good.safetensors"), "pt").metadata()
    sd = load_file(str(d / "good.safetensors"))
    save_file({k: v.to(torch.int32) if v.is_floating_point() else v for k, v in sd.items()},
              str(d / "int32.safetensors"), metadata=meta)
    other = dataclasses.replace(COMPACT, decoder=dataclasses.replace(COMPACT.decoder, embed_dim=64, num_heads=2))
    # tensors of another width under the compact config's metadata (an official-format file of another width
    # would be loaded with an inferred config, by design)
    save_file({k: v.contiguous() for k, v in TraceAnythingNet(other).state_dict().items()},
              str(d / "wrong_arch.safetensors"), metadata=meta)
    return {"good": d / "good.safetensors", "truncated": d / "truncated.safetensors",
            "wrong_dtype": d / "int32.safetensors", "wrong_arch": d / "wrong_arch.safetensors",
            "missing": d / "nope.pt"}


@pytest.fixture(scope="module")
def env(tmp_path_factory, ros_context):
    log_path = tmp_path_factory.mktemp("log") / "node.log"
    log = open(log_path, "w")
    cmd = [sys.executable, "-m", "trace_anything_ros.ros.trajectory_field_node", "--ros-args",
           "-p", f"input_height:={IN_H}", "-p", f"input_width:={IN_W}", "-p", "diagnostics.period:=0.2",
           "-p", "window.length:=4", "-p", "tracks.stride:=16", "-p", "model.warmup:=true",
           "-p", "diagnostics.stale_after:=0.6"]
    proc = subprocess.Popen(cmd, env=node_env(TAR_FAULTY_FAIL_AT="3", TAR_ANALYTIC_DELAY="0.12"), stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        with node_under_test(proc, Harness(ros_context, "faults_test")) as (h, _):
            yield h, proc, log_path
    finally:
        log.close()
        print(log_path.read_text()[-3000:])


def _lines(log_path, needle):
    return [ln for ln in log_path.read_text().splitlines() if needle in ln]


def _to_unconfigured(h):
    st = h.lc.get_state()
    if st == "active":
        assert h.lc.change_state("deactivate")
        st = "inactive"
    if st == "inactive":
        assert h.lc.change_state("cleanup")
    assert h.lc.get_state() == "unconfigured"


@pytest.mark.parametrize("case,why", [("missing", "no such file"), ("truncated", "truncated"),
                                      ("wrong_arch", "wrong architecture"), ("wrong_dtype", "wrong dtype")])
def test_bad_model_file_fails_activation_cleanly(env, ckpts, case, why):
    """The model loads on activate: the transition fails with ONE error line naming the file, the node stays up
    (inactive), diagnostics say ERROR with the reason."""
    h, proc, log_path = env
    _to_unconfigured(h)
    path = str(ckpts[case])
    rs = h.set_params(estimator__factory="", model__weights=path)
    assert all(r.successful for r in rs), [r.reason for r in rs]
    n0 = len(_lines(log_path, "model failed to load"))
    assert h.lc.change_state("configure")
    assert not h.lc.change_state("activate")
    assert h.lc.get_state() == "inactive" and proc.poll() is None
    assert h.wait_diag(lambda s, v: s.level == b"\x02" and why in s.message and path in s.message, 15), \
        (h.diag[-1].message if h.diag else None)
    time.sleep(0.3)  # log flush
    new = _lines(log_path, "model failed to load")[n0:]
    assert len(new) == 1 and why in new[0] and path in new[0], new
    # one line: the record's message has no continuation lines (no traceback at the default log level)
    text = log_path.read_text()
    after = text[text.index(new[0]) + len(new[0]):].lstrip("\n").splitlines()[:1]
    assert not after or not after[0].startswith(("Traceback", "  File", " ")), after


def test_good_model_file_after_failures(env, ckpts):
    h, proc, _ = env
    _to_unconfigured(h)
    assert h.set_params(model__weights=str(ckpts["good"]))[0].successful
    assert h.lc.change_state("configure") and h.lc.change_state("activate")
    assert h.lc.get_state() == "active"
    assert h.wait_diag(lambda s, v: v.get("model_state") == "ready" and s.level != b"\x02", 15), h.diag_values()
    assert proc.poll() is None


def test_model_exception_mid_run_drops_one_window_and_continues(env):
    """faulty_estimator raises on its 3rd predict (warm-up = 1st): that window is dropped, logged once with its
    stamps, counted as dropped.model_error; the following windows are published."""
    h, proc, log_path = env
    _to_unconfigured(h)
    # throughput policy: every window is taken as offered (the latency policy may replace a waiting window by a
    # newer one on a loaded machine; here the point is which window the fault drops, not the scheduling)
    rs = h.set_params(estimator__factory="faulty_estimator:create", model__weights="", window__policy="throughput")
    assert all(r.successful for r in rs)
    assert h.lc.change_state("configure") and h.lc.change_state("activate")
    assert h.wait(lambda: h.pub_img.get_subscription_count() > 0, 30), "subscription never matched"
    assert h.wait(lambda: len(h.node.get_publishers_info_by_topic(f"{NODE}/tracks")) > 0, 30), "no tracks publisher"
    h.got.clear()
    stamps = h.stream(50_000_000_000, 12, period_ns=200_000_000)  # 5 Hz: every window is processed (0.12 s each)
    assert h.wait(lambda: len(h.got.get("tracks", [])) >= 7, 15), len(h.got.get("tracks", []))
    assert h.wait_diag(lambda s, v: int(v.get("dropped.model_error", 0)) == 1)
    time.sleep(0.3)
    lines = _lines(log_path, "window dropped, model failed")
    assert len(lines) == 1, lines
    assert ("injected model fault" in lines[0] and "4 frames" in lines[0]
            and "stamps 50.200..50.800" in lines[0]), lines[0]
    # the failed window (3rd predict = 2nd stream window: frames 1..4) is missing, the rest came through
    from trace_anything_ros.ros.conversions import stamp_to_ns

    def newest():
        return [stamp_to_ns(m.header.stamp) for m in h.got["tracks"]]
    # the stream's last window comes through too (on a loaded machine it may still be in flight here)
    assert h.wait(lambda: stamps[-1] in newest(), 15), newest()
    assert stamps[4] not in newest() and stamps[3] in newest()
    assert proc.poll() is None and h.lc.get_state() == "active"


def test_camera_stop_warns_stale_and_restart_resumes(env):
    h, proc, _ = env
    assert h.wait_diag(lambda s, v: "stale input" in s.message and s.level == b"\x01", 10)
    h.got.clear()
    h.stream(60_000_000_000, 8, period_ns=100_000_000)
    assert h.wait(lambda: h.got.get("tracks"), 10), "no output after the camera restarted"
    assert h.wait_diag(lambda s, v: "stale input" not in s.message and s.level == b"\x00"), h.diag[-1].message
    assert h.lc.get_state() == "active" and proc.poll() is None


def test_time_jump_back_publishes_no_stale_window(env):
    """A bag loop / sim reset while a window is in the model: the in-flight window of the old timeline is not
    published after the jump, and everything published after it is from the new timeline."""
    h, proc, _ = env
    from trace_anything_ros.ros.conversions import stamp_to_ns
    arrivals = []
    from trace_anything_ros.msg import TrajectoryArray
    sub = h.node.create_subscription(
        TrajectoryArray, f"{NODE}/tracks",
        lambda m: arrivals.append((time.monotonic(), [stamp_to_ns(s) for s in m.frame_stamps])), 10)
    try:
        # Whether a window is inside the model at the instant of the jump is a race the test cannot pin from outside
        # the node; the scenario is repeated (each time a fresh old timeline, then a jump back) until the node's
        # stale_reset counter proves one was. Every attempt must pass the no-stale-output checks.
        exercised = False
        for attempt in range(4):
            arrivals.clear()
            old = h.stream((200 + 100 * attempt) * 1_000_000_000, 20, period_ns=50_000_000)  # 20 Hz: always busy
            v0 = h.diag_values()
            jump_ns = (2 + 10 * attempt) * 1_000_000_000
            h.pub_img.publish(h.image(jump_ns))
            t_jump = time.monotonic()
            new_stamps = {jump_ns, *h.stream(jump_ns + 50_000_000, 20, period_ns=50_000_000)}
            h.spin(0.5)
            assert h.wait_diag(
                lambda s, v: int(v.get("dropped.time_reset", 0)) > int(v0.get("dropped.time_reset", 0))), \
                f"attempt {attempt}: time_reset not counted {v0} {h.diag_values()}"
            # When the node saw the jump cannot be read from this process's clock: under load the node works through
            # old frames still queued when the test published the jump (measured: old windows whose newest frame was
            # published 0.05-0.1 s before the jump arrived 0.3-0.45 s after it, at load average ~10). The node's
            # output order can: once a window of the new timeline is out, nothing of the old one may follow. The
            # in-flight window itself is proven dropped by the stale_reset counter below (a regression leaves it 0).
            first_new = next((i for i, (t, st) in enumerate(arrivals) if set(st) <= new_stamps), None)
            assert first_new is not None, f"attempt {attempt}: no output after the jump"
            late = [(t - t_jump, st) for t, st in arrivals[first_new:] if max(st) >= old[0]]
            assert not late, f"attempt {attempt}: old-timeline windows after a new-timeline one: {late[:3]}"
            if h.wait_diag(lambda s, v: int(v.get("dropped.stale_reset", 0))
                           > int(v0.get("dropped.stale_reset", 0)), 5):
                exercised = True
                break
        assert exercised, ("in 4 attempts no window was dropped as stale_reset: none was in flight at the jump, or "
                           "the node published the in-flight window of the old timeline (what this test guards)")
    finally:
        h.node.destroy_subscription(sub)
    assert proc.poll() is None


def test_invalid_runtime_parameters_rejected_via_parameter_service(env):
    """Through rclpy's AsyncParameterClient (the real ~/set_parameters service): wrong types, NaN, out of range,
    configure-time parameters while active are refused and the values stay."""
    h, _, _ = env
    from rclpy.parameter import Parameter, parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient
    cli = AsyncParameterClient(h.node, NODE)
    assert cli.wait_for_services(10.0)

    def set_(*params):
        fut = cli.set_parameters(list(params))
        assert h.wait(fut.done, 10)
        return fut.result().results

    def get_(*names):
        fut = cli.get_parameters(list(names))
        assert h.wait(fut.done, 10)
        return [parameter_value_to_python(pv) for pv in fut.result().values]

    before = get_("tracks.stride", "forecast.horizon", "window.length", "diagnostics.stale_after")
    bad = [Parameter("tracks.stride", Parameter.Type.STRING, "sixteen"),
           Parameter("forecast.horizon", Parameter.Type.DOUBLE, float("nan")),
           Parameter("forecast.horizon", Parameter.Type.DOUBLE, float("inf")),
           Parameter("diagnostics.stale_after", Parameter.Type.DOUBLE, -1.0),
           Parameter("window.length", Parameter.Type.INTEGER, 6),
           Parameter("mask.encoding", Parameter.Type.STRING, "jpeg")]
    for p in bad:
        r = set_(p)[0]
        assert not r.successful and r.reason, (p.name, p.value)
    assert get_("tracks.stride", "forecast.horizon", "window.length", "diagnostics.stale_after") == before
    assert set_(Parameter("tracks.stride", Parameter.Type.INTEGER, 32))[0].successful
    assert get_("tracks.stride")[0] == 32
