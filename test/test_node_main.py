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

"""``ros.node_main.spin_node`` in a process of its own, stopped with a real SIGINT: a node whose clean-up is slow
writes every thread's stack to stderr after ``SLOW_STOP_S`` (where ``ros2 launch`` would soon escalate to SIGTERM)
and still exits 0; a prompt one writes nothing. A context shut down with no wake left for the executor (the state
rclpy's SIGINT thread can leave) still ends the spin."""
import signal
import subprocess
import sys
import time

import pytest

from ros_helpers import node_env

pytestmark = pytest.mark.ros

SCRIPT = """
import sys, threading, time
import rclpy
import rclpy.node
from trace_anything_ros.ros.node_main import spin_node

def slow_cleanup_of_the_test(node):
    time.sleep(float(sys.argv[1]))

def shut_down_without_a_wake():
    time.sleep(1.0)
    rclpy.get_default_context().handle.shutdown()   # C level: no Python callbacks, no executor wake
    print("shut down", flush=True)

def factory():
    if sys.argv[2] == "dead_clock":   # a sim-time node whose /clock has stopped: its timer wakes nothing
        node = rclpy.node.Node("spin_node_test", parameter_overrides=[rclpy.parameter.Parameter("use_sim_time",
                                                                                               value=True)])
        threading.Thread(target=shut_down_without_a_wake, daemon=True).start()
    else:
        node = rclpy.node.Node("spin_node_test")
    node.create_timer(0.2, lambda: None)
    print("spinning", flush=True)
    return node

sys.exit(spin_node(factory, ["spin_node_test"], cleanup=slow_cleanup_of_the_test))
"""


def _stop(cleanup_s: float, mode: str = "sigint"):
    # started with SIGINT ignored, as a script's `&` and CI start it: no KeyboardInterrupt, rclpy's handler only
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(cleanup_s), mode], env=node_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert proc.stdout.readline().strip() == "spinning"
        t = time.monotonic()
        if mode == "sigint":
            time.sleep(1.0)
            t = time.monotonic()
            proc.send_signal(signal.SIGINT)
        else:
            assert proc.stdout.readline().strip() == "shut down"
            t = time.monotonic()
        out, err = proc.communicate(timeout=30)
        return proc.returncode, time.monotonic() - t, err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_slow_stop_writes_where_it_is_stuck():
    from trace_anything_ros.ros.node_main import SLOW_STOP_S

    rc, took, err = _stop(SLOW_STOP_S + 1.5)
    assert rc == 0, err
    assert took >= SLOW_STOP_S + 1.5
    assert "Timeout (" in err and "slow_cleanup_of_the_test" in err, err


def test_a_prompt_stop_writes_nothing():
    rc, took, err = _stop(0.0)
    assert rc == 0, err
    assert "Timeout (" not in err and "Traceback" not in err, err


def test_a_context_shut_down_without_a_wake_ends_the_spin():
    """rclpy's SIGINT thread triggers the executors' guard conditions, then shuts the contexts down without
    waking them; an executor that woke in between waits again. Here the context is shut down at the C level with
    no wake at all, on a sim-time node without /clock (its timer never fires): the watcher must end the spin."""
    from trace_anything_ros.ros.node_main import SHUTDOWN_POLL_S

    rc, took, err = _stop(0.0, "dead_clock")
    assert rc == 0, err
    assert took < SHUTDOWN_POLL_S + 5.0, f"spin took {took:.1f} s to end after the context was shut down\n{err}"
    assert "Timeout (" not in err, err
