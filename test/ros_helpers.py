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

"""Helpers shared by the tests that drive a node in a separate process from an in-process rclpy node.

- ``node_env`` / ``stop_process``: the node subprocess's environment and its shutdown (one home:
  ``trace_anything_ros.ros.soak``, which the soak/bench harness uses too).
- ``RosHarness``: a test-side node + executor in the caller's rclpy context (the ``ros_context`` fixture of
  conftest, never the global one), with a lifecycle client and a ``set_parameters`` client for ``target``.
- ``node_under_test``: wait for the node's lifecycle services, yield, then close the harness and stop the node,
  printing the tail of its output.
"""
from __future__ import annotations

import contextlib
import time

from trace_anything_ros.ros.soak import node_env, stop_process  # noqa: F401 (re-exported for the tests)


class RosHarness:
    WAIT_TIMEOUT = 15.0

    def __init__(self, name, context, target):
        import rclpy
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import SingleThreadedExecutor

        from trace_anything_ros.ros.lifecycle_client import LifecycleClient

        self.node = rclpy.create_node(name, context=context)
        self.ex = SingleThreadedExecutor(context=context)
        self.ex.add_node(self.node)
        self.lc = LifecycleClient(self.node, target, executor=self.ex)
        self._set = self.node.create_client(SetParameters, f"{target}/set_parameters")

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)

    def wait(self, pred, timeout=None):
        end = time.monotonic() + (self.WAIT_TIMEOUT if timeout is None else timeout)
        while time.monotonic() < end:
            if pred():
                return True
            self.ex.spin_once(timeout_sec=0.05)
        return pred()

    def call(self, client, req, timeout=10.0, tries=2):
        """The service's answer; a request without one in ``timeout`` is sent again (the calls made through it
        are idempotent: parameters, a goal, a cancel). A service found by ``wait_for_service`` may not yet have
        discovered this client's response reader, and its answer is then lost (fresh-clone CI: the planner's
        set_parameters)."""
        assert client.wait_for_service(timeout)
        for _ in range(tries):
            fut = client.call_async(req)
            if self.wait(fut.done, timeout):
                return fut.result()
            client.remove_pending_request(fut)
        raise AssertionError(f"{client.srv_name}: no answer in {tries} x {timeout} s")

    def set_params(self, **values):
        """``a__b=v`` sets parameter ``a.b`` through the node's ``set_parameters`` service; returns the results."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        req = SetParameters.Request()
        req.parameters = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
        return self.call(self._set, req).results

    def close(self):
        self.ex.shutdown()
        self.node.destroy_node()


@contextlib.contextmanager
def node_under_test(proc, harness, timeout=30.0, stop_timeout=15.0, tail=4000):
    """Yields ``(harness, proc)`` once the node's lifecycle services are up; always closes and stops both."""
    try:
        assert harness.lc.wait_for_service(timeout), "node did not come up"
        yield harness, proc
    finally:
        harness.close()
        out = stop_process(proc, stop_timeout)
        if out:
            print(out[-tail:])
