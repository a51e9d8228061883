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

"""LifecycleClient against a lifecycle service whose first reply never comes in time (what a reply lost right after
discovery looks like to the caller): get_state asks again and gets the state; change_state does not send the
transition twice but sees the goal state reached. Real rclpy nodes and services over DDS, in one process."""
import threading
import time

import pytest

pytestmark = pytest.mark.ros


@pytest.fixture
def server(ros_context):
    """A node serving ``/slow_target/get_state`` and ``/slow_target/change_state``: the first get_state request
    is answered only after 20 s (longer than the caller's timeout), later ones at once; change_state's reply comes
    after 20 s while the state has already changed."""
    from lifecycle_msgs.srv import ChangeState, GetState
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    node = Node("slow_target_server", context=ros_context)
    state = {"label": "unconfigured", "gets": 0, "changes": 0}
    group = ReentrantCallbackGroup()

    def on_get(req, res):
        state["gets"] += 1
        if state["gets"] == 1:
            time.sleep(20.0)
        res.current_state.label = state["label"]
        return res

    def on_change(req, res):
        state["changes"] += 1
        state["label"] = "inactive"
        time.sleep(20.0)
        res.success = True
        return res

    node.create_service(GetState, "/slow_target/get_state", on_get, callback_group=group)
    node.create_service(ChangeState, "/slow_target/change_state", on_change, callback_group=group)
    ex = MultiThreadedExecutor(num_threads=4, context=ros_context)
    ex.add_node(node)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    yield state
    ex.shutdown(timeout_sec=0)
    node.destroy_node()


def test_a_lost_reply_is_asked_again(server, ros_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from trace_anything_ros.ros.lifecycle_client import LifecycleClient
    node = Node("slow_target_client", context=ros_context)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(node)
    try:
        lc = LifecycleClient(node, "/slow_target", executor=ex)
        assert lc.wait_for_service(20)
        t0 = time.monotonic()
        assert lc.get_state(timeout=10.0, retry=1.0) == "unconfigured"
        assert time.monotonic() - t0 < 8.0 and server["gets"] >= 2
        t0 = time.monotonic()
        assert lc.change_state("configure", timeout=10.0, retry=1.0)      # the goal state, seen by get_state
        assert time.monotonic() - t0 < 8.0 and server["changes"] == 1   # sent once
        assert lc.get_state(timeout=1.0, retry=1.0) == "inactive"
    finally:
        ex.shutdown(timeout_sec=0)
        node.destroy_node()
