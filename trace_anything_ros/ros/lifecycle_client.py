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

    def get_state(self, timeout: float = 10.0) -> Optional[str]:
        res = self._spin_until(self._get.call_async(GetState.Request()), timeout)
        return None if res is None else res.current_state.label

    def change_state(self, transition: str, timeout: float = 120.0) -> bool:
        req = ChangeState.Request()
        req.transition.id = TRANSITIONS[transition]
        res = self._spin_until(self._change.call_async(req), timeout)
        return bool(res is not None and res.success)
