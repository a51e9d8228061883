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


"""ros.diagnostics.perception_report: the perception node's status from a plain snapshot (no node, no DDS)."""
from trace_anything_ros.ros import diagnostics as diag


def _snap(**kw):
    base = dict(lc_state="active", model_state="loaded", model_error="", input_rate_hz=10.0, output_rate_hz=2.0,
                frames_in=100, windows_out=20, since_input_s=0.1, drops={}, warned={},
                stats={"latency_s": {"last": 0.2, "mean": 0.25, "median": 0.2, "max": 0.5}, "post_s": {}})
    base.update(kw)
    return diag.PerceptionSnapshot(**base)


def test_a_healthy_node_is_ok_with_its_counters_and_queues():
    level, msg, values, loss = diag.perception_report(_snap(sync_queues=(1, 2, 3, 10)))
    assert level == diag.OK and msg == "active, model loaded" and loss is None
    assert values["frames_in"] == 100 and values["latency_s_max"] == 0.5 and "post_s_last" not in values
    assert (values["queue.sync_images"], values["queue.sync_depth"], values["queue.camera_info"],
            values["queue.sync_capacity"]) == (1, 2, 3, 10)
    assert "stream_switches" not in values and "camera_motion" not in values and "error" not in values
    keys = list(values)  # the order the node always published
    assert keys[:9] == ["lifecycle_state", "model_state", "input_rate_hz", "output_rate_hz", "frames_in",
                        "windows_out", "time_since_last_input_s", "dropped_total", "incompatible_qos_events"]


def test_stale_input_recent_drops_and_warnings_raise_warn():
    level, msg, values, _ = diag.perception_report(_snap(
        since_input_s=float("inf"), drops={"future_stamp": 3, "invalid_depth": 1}, recent_drops=["future_stamp"],
        last_drop=("future_stamp", "image stamp ...", 0.5), warnings=["depth is 320x240 ..."]))
    assert level == diag.WARN
    assert msg == ("stale input: no image for ever; input rejected in the last 2 s: future_stamp (3); "
                   "depth is 320x240 ...")
    assert values["time_since_last_input_s"] == -1.0 and values["dropped_total"] == 4
    assert values["dropped.future_stamp"] == 3 and values["last_drop_reason"] == "future_stamp"


def test_model_failure_is_error_and_input_loss_is_reported_for_the_log():
    level, msg, values, loss = diag.perception_report(_snap(
        model_state="failed", model_error="OSError: no weights", lost_before_node=50, lost_since_last=40,
        in_since_last=5))
    assert level == diag.ERROR and msg.startswith("model failed to load: OSError: no weights; input loss: 40 of 45")
    assert loss is not None and loss in msg and values["error"] == "OSError: no weights"
    _, _, _, loss = diag.perception_report(_snap(lost_since_last=8, in_since_last=5))
    assert loss is None  # up to 10 lost per status: not reported


def test_ingest_and_camera_pose_values_when_configured():
    st = {"ring": 3, "ring_capacity": 8, "window_pending": 1, "accepted": 90, "used": 80, "unused_dropped": 5,
          "unused_in_ring": 5, "windows_offered": 30, "switches": 1}
    _, _, values, _ = diag.perception_report(_snap(ingest=st, camera_pose=("moving", 2, 40)))
    assert values["stream_switches"] == 1 and values["frames_accepted"] == 90 and values["queue.ring_capacity"] == 8
    assert (values["camera_motion"], values["windows_without_camera_pose"], values["queue.camera_poses"]) == (
        "moving", 2, 40)
    s = diag.status("n: perception", "/n", diag.WARN, "m", values)  # the message the node publishes
    assert diag.level_of(s) == diag.WARN and {kv.key for kv in s.values} == set(values)


def test_input_loss_names_reliable_qos_when_every_publisher_offers_it():
    """Large images over a best-effort subscription lose whole messages (README, measured 88 vs 200 of ~220): when
    every image publisher offers reliable QoS, the loss line says so and names the setting; otherwise the general
    causes. The subscription's QoS and the publishers' are values of every status."""
    lost = dict(lost_since_last=40, in_since_last=5)
    _, _, values, loss = diag.perception_report(_snap(input_qos="best_effort", image_publishers=(1, 0), **lost))
    assert "every image publisher (1) offers reliable QoS" in loss
    assert "qos.reliability: auto (follows them) or reliable" in loss
    assert (values["input_qos"], values["image_publishers_reliable"], values["image_publishers_best_effort"]) == (
        "best_effort", 1, 0)
    for qos, pubs in (("best_effort", (1, 1)), ("best_effort", (0, 2)), ("reliable", (2, 0)), ("", (0, 0))):
        _, _, values, loss = diag.perception_report(_snap(input_qos=qos, image_publishers=pubs, **lost))
        assert "offers reliable QoS" not in loss and "UDP fragment" in loss, (qos, pubs, loss)
        assert ("input_qos" in values) == bool(qos)


def test_planner_report_levels_follow_the_newest_plan_inputs_and_estimator():
    """ros.diagnostics.planner_report: OK with no goal; WARN naming a REFUSED / HALTED plan's reason, recent camera
    drops and named warnings (and not an older drop or an OK plan); ERROR when the goal-image estimator failed."""
    counts = {"ok": 2, "refused": 1, "halted": 0, "done": 0, "idle": 1}
    level, msg, v = diag.planner_report(diag.PlannerSnapshot("active", "", counts))
    assert level == diag.OK and msg == "active, goal none" and v["goal"] == "none" and v["plans.ok"] == 2
    assert "last_plan_status" not in v and v["time_since_last_window_s"] == -1.0
    level, msg, v = diag.planner_report(diag.PlannerSnapshot("active", "image", counts, ("OK", "", 0.5),
                                                             drops={"truncated": 3}))
    assert level == diag.OK and msg == "active, goal image, last plan OK" and v["dropped.truncated"] == 3
    level, msg, v = diag.planner_report(diag.PlannerSnapshot(
        "active", "image", counts, ("REFUSED", "image goal: no depth image", 0.2), drops={"truncated": 3},
        recent_drops=["truncated"], warnings=["camera_info: 'plumb_bob' distortion moves pixels up to 9.0 px"]))
    assert level == diag.WARN and v["last_plan_reason"] == "image goal: no depth image"
    assert msg.split("; ") == ["REFUSED: image goal: no depth image", "camera input rejected lately: truncated (3)",
                               "camera_info: 'plumb_bob' distortion moves pixels up to 9.0 px"]
    level, msg, v = diag.planner_report(diag.PlannerSnapshot("active", "image", counts, ("OK", "", 0.1),
                                                             estimator="failed: no such file 'w.pt'"))
    assert level == diag.ERROR and msg == "goal-image estimator failed: no such file 'w.pt'"
