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

"""A launch_testing test of one of the package's launch files, run with `launch_test` by test/test_launch_graphs.py.

Not collected by pytest (the file name matches neither test_*.py nor *_test.py): it runs in its own `launch_test`
process inside the colcon workspace's environment (install/setup.sh). What it launches and checks comes from the
JSON in $TAR_LAUNCH_SPEC (see test_launch_graphs.py):
  launch_file, launch_args        the installed launch file (share/trace_anything_ros/launch) and its arguments
  standin                         parameters of a sim_camera_node started beside it (the camera stand-in), or null
  lifecycle                       managed nodes that must reach 'active' within active_within_s
  params                          {node: {name: value}} read through the node's parameter services
  topics                          {topic: {type, min_hz, frame_id}}: rate over measure_s and header.frame_id
  log_contains                    lines the processes' output must contain (e.g. which weights were loaded)
  nodes, dump                     a JSON file that receives every parameter of these nodes (parameter services)
After shutdown: every process exited with 0 and no output line is an ERROR or a traceback.
"""
import json
import os
import sys
import time
import unittest

import launch_testing
import launch_testing.actions
import launch_testing.asserts
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import Node

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from launch_helpers import BAD, call_service, dump_parameters  # noqa: E402

SPEC = json.loads(os.environ["TAR_LAUNCH_SPEC"])


def generate_test_description():
    share = get_package_share_directory("trace_anything_ros")
    actions = [IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", SPEC["launch_file"])),
        launch_arguments=list(SPEC.get("launch_args", {}).items()))]
    if SPEC.get("standin") is not None:
        actions.append(Node(package="trace_anything_ros", executable="sim_camera_node", name="standin_camera",
                            parameters=[SPEC["standin"]], output="screen"))
    return LaunchDescription(actions + [launch_testing.actions.ReadyToTest()]), {}


class TestGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        cls.ctx = rclpy.Context()
        rclpy.init(context=cls.ctx)
        cls.node = rclpy.create_node("tar_launch_test", context=cls.ctx)
        cls.ex = SingleThreadedExecutor(context=cls.ctx)
        cls.ex.add_node(cls.node)

    @classmethod
    def tearDownClass(cls):
        cls.ex.shutdown()
        cls.node.destroy_node()
        cls.ctx.shutdown()

    def _call(self, srv_type, name, req, timeout=10.0):
        return call_service(self.node, self.ex, srv_type, name, req, timeout)

    def _state(self, node):
        from lifecycle_msgs.srv import GetState
        res = self._call(GetState, f"{node}/get_state", GetState.Request(), timeout=15.0)
        return res.current_state.label if res is not None else None

    def test_1_lifecycle_nodes_active(self, proc_output):
        t0 = time.monotonic()
        limit = SPEC.get("active_within_s", 30.0)
        states = {}
        while time.monotonic() - t0 < limit + 30.0:  # wait a bit past the limit, to tell "late" from "never"
            states = {n: self._state(n) for n in SPEC["lifecycle"]}
            if all(s == "active" for s in states.values()):
                break
            time.sleep(0.5)
        took = time.monotonic() - t0
        print(f"[launch_graph] lifecycle states {states} after {took:.1f} s", flush=True)
        self.assertTrue(all(s == "active" for s in states.values()), states)
        self.assertLess(took, limit, f"active after {took:.1f} s (limit {limit} s)")

    def test_2_parameters(self):
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        for node, want in SPEC.get("params", {}).items():
            res = self._call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=list(want)))
            self.assertIsNotNone(res, f"{node}/get_parameters did not answer")
            got = {k: parameter_value_to_python(v) for k, v in zip(want, res.values)}
            self.assertEqual(got, want, node)

    def test_3_topics_rate_and_frame(self):
        """Rates from raw (serialized) messages: the test's own deserialization would take CPU from the graph on a
        2-core machine; a few messages per topic are deserialized for their frame id."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
        from rosidl_runtime_py.utilities import get_message
        topics = SPEC.get("topics", {})
        got = {t: [] for t in topics}
        diags = {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        subs = [self.node.create_subscription(get_message(s["type"]), t,
                                              lambda m, t=t: got[t].append((time.monotonic(), m)), qos, raw=True)
                for t, s in topics.items()]
        subs.append(self.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: diags.update({st.name: {kv.key: kv.value for kv in st.values} for st in m.status}), qos))
        end = time.monotonic() + SPEC.get("measure_s", 10.0)
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.05)
        for s in subs:
            self.node.destroy_subscription(s)
        model_s = None
        for name, values in diags.items():
            if "perception" in name:
                model_s = float(values.get("model_time_s_median") or 0.0) or None
                keys = ("input_rate_hz", "output_rate_hz", "model_time_s_median", "latency_s_median", "dropped_total")
                keys += tuple(sorted(k for k in values if k.startswith("dropped.")))
                print(f"[launch_graph] diagnostics {name}: " + ", ".join(f"{k} {values.get(k)}" for k in keys),
                      flush=True)
                # the graph's own camera is honest: none of its frames may be taken for a future stamp (under sim
                # time the node clock lags /clock while the executor is busy; see the node's _now_ns)
                self.assertEqual(float(values.get("dropped.future_stamp", 0) or 0), 0.0, values)
        for t, s in topics.items():
            msgs = got[t]
            self.assertGreaterEqual(len(msgs), 2, f"{t}: {len(msgs)} messages")
            hz = (len(msgs) - 1) / (msgs[-1][0] - msgs[0][0])
            print(f"[launch_graph] {t}: {hz:.2f} Hz ({len(msgs)} messages)", flush=True)
            self.assertGreaterEqual(hz, s["min_hz"], t)
            if s.get("min_busy"):  # the camera outpaces the model: a window is published per model run
                self.assertIsNotNone(model_s, f"no model time in /diagnostics: {diags}")
                self.assertGreaterEqual(hz * model_s, s["min_busy"], f"{t}: {hz:.2f} Hz, model {model_s:.3f} s")
            if s.get("frame_id"):
                frames = {deserialize_message(m, get_message(s["type"])).header.frame_id for _, m in msgs[-3:]}
                self.assertEqual(frames, {s["frame_id"]}, t)

    def test_4_log_says(self, proc_output):
        for text in SPEC.get("log_contains", []):
            proc_output.assertWaitFor(text, timeout=5.0)

    def test_5_dump_parameters(self):
        if SPEC.get("dump"):
            dump = {n: dump_parameters(self.node, self.ex, n) for n in SPEC["nodes"]}
            with open(SPEC["dump"], "w") as f:
                json.dump(dump, f, indent=1, sort_keys=True)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes_zero(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_no_error_or_traceback(self, proc_output):
        bad = [(o.process_name, line) for o in proc_output for line in o.text.decode(errors="replace").splitlines()
               if any(b in line for b in BAD)]
        self.assertEqual(bad, [])
