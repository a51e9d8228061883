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

"""Load: the perception node flooded with 640x480 rgb8 at 60 Hz (model 5x slower than the stream) and the planner
flooded with tracks at 100 Hz, each in its own process (ros/soak.py; the full run is `bench soak --duration 600`).
The perception model is the analytic stand-in (``trace_anything_ros.model.analytic``) made slow by a sleep
(``TAR_ANALYTIC_DELAY``): the load under test is the node's, not a network's."""
import json

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _report(res):
    res = dict(res)
    res.pop("node_log_tail", None)
    return json.dumps(res, indent=1, default=str)


def test_perception_flood_memory_fds_latency_accounting_queues(ros_context):
    from trace_anything_ros.ros.soak import soak_perception
    res = soak_perception(duration=40.0, rate=60.0, model_delay=0.2, warmup=10.0, context=ros_context)
    print(_report(res))
    failed = [k for k, ok in res["pass"].items() if not ok]
    assert not failed, f"{failed}\n{_report(res)}\n{res.get('node_log_tail', '')}"
    acc = res["accounting"]
    # the flood reached the node. A guard, not the figure (that is `bench soak`'s): best-effort 640x480 at 60 Hz on
    # 2 shared cores delivered 49 % (fresh-clone CI), 31 % (suite + a training job) and > 50 % alone
    assert acc["frames_in"] > 0.3 * acc["frames_sent"]
    assert acc["not_processed"] > 0 and acc["drops"].get("stale_window", 0) > 0  # the model really was too slow


def test_planner_flood_keeps_up_with_newest_input(ros_context):
    from trace_anything_ros.ros.soak import soak_planner
    res = soak_planner(duration=12.0, rate=100.0, warmup=3.0, context=ros_context)
    print(_report(res))
    failed = [k for k, ok in res["pass"].items() if not ok]
    assert not failed, f"{failed}\n{_report(res)}\n{res.get('node_log_tail', '')}"


def test_input_not_starved_by_a_slow_model(ros_context):
    """30 Hz 640x480 stream, model 0.25 s per window (slower than the stream), tracks subscribed (motion + track
    messages run in the worker): the node's executor must still receive the stream.

    What this bound can and cannot prove: it guards against total starvation (an executor blocked by the worker
    receives ~nothing), not against the partial starvation once fixed here (37 % before the fix -- single-threaded
    executor, multi-threaded BLAS -- vs 78-81 % alone after): on this shared 2-core machine the publisher, the node
    and the test compete with other work, and the fraction after the fix spans 0.43-0.62 under load. A same-run
    baseline (the same stream with a worker that runs one window per 3 s) did not remove the load: three paired
    runs gave ratios 0.64, 0.85 and 1.24. The issue's >= 90 % target is a figure of `trace-anything-ros bench node`
    on a quiet machine, not of this test."""
    from trace_anything_ros.ros.node_bench import bench_stream
    res = bench_stream(duration=20.0, model_delay=0.25, factory="analytic_estimator:create", rate=30.0,
                       context=ros_context)
    res.pop("rss_MB_series", None)
    print(json.dumps(res, indent=1))
    assert res["windows_out"] > 20 and res["dropped"].get("stale_window", 0) > 0  # the model was the bottleneck
    assert res["input_fraction"] >= 0.30, res
