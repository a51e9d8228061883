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

"""Drive managed (lifecycle) nodes through their services: <node>/change_state and <node>/get_state."""
from __future__ import annotations

import time
from typing import Optional

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState

TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
    "inactive_shutdown": Transition.TRANSITION_INACTIVE_SHUTDOWN,
    "active_shutdown": Transition.TRANSITION_ACTIVE_SHUTDOWN,
}
# the state each transition ends in when it succeeds
GOAL = {"configure": "inactive", "cleanup": "unconfigured", "activate": "active", "deactivate": "inactive",
        "shutdown": "finalized", "inactive_shutdown": "finalized", "active_shutdown": "finalized"}
RETRY_S = 2.0


class LifecycleClient:
    """Synchronous lifecycle calls from a helper node (spins the given node/executor while waiting)."""

    def __init__(self, node, target: str, executor=None):
        self.node = node
        self.target = target.rstrip("/")
        self.executor = executor
        self._change = node.create_client(ChangeState, f"{self.target}/change_state")
        self._get = node.create_client(GetState, f"{self.target}/get_state")

    def _spin_until(self, future, timeout: float):
        end = time.monotonic() + timeout
        while not future.done() and time.monotonic() < end:
            if self.executor is not None:
                self.executor.spin_once(timeout_sec=0.05)
            else:
                rclpy.spin_once(self.node, timeout_sec=0.05)
        return future.result() if future.done() else None

    def wait_for_service(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._change.service_is_ready() and self._get.service_is_ready():
                return True
            if self.executor is not None:
                self.executor.spin_once(timeout_sec=0.1)
            else:
                rclpy.spin_once(self.node, timeout_sec=0.1)
        return False

    def get_state(self, timeout: float = 10.0, retry: float = RETRY_S) -> Optional[str]:
        """The target's state label, or None. A request whose reply does not come within ``retry`` seconds is sent
        again: right after discovery a service's reply can be lost (the server's reply writer has not matched this
        client's reader yet; fresh-clone CI: a planner's first get_state unanswered for 10 s, every test after it
        failing), and asking again is harmless."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            res = self._spin_until(self._get.call_async(GetState.Request()), min(retry, max(left, 0.0)))
            if res is not None:
                return res.current_state.label
            if time.monotonic() >= end:
                return None

    def change_state(self, transition: str, timeout: float = 120.0, retry: float = RETRY_S) -> bool:
        """Trigger ``transition`` and wait for its result. A transition is not sent twice; while its reply is
        outstanding, the target's state is asked every ``retry`` seconds, and reaching the transition's goal state
        counts as success (its reply may be the one lost)."""
        req = ChangeState.Request()
        req.transition.id = TRANSITIONS[transition]
        fut = self._change.call_async(req)
        end = time.monotonic() + timeout
        while True:
            res = self._spin_until(fut, min(retry, max(end - time.monotonic(), 0.0)))
            if res is not None:
                return bool(res.success)
            if self.get_state(timeout=min(retry, max(end - time.monotonic(), 0.0)) + 0.1) == GOAL[transition]:
                return True
            if time.monotonic() >= end:
                return False
