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

"""rclpy process and context boilerplate shared by every node's ``main()`` and by in-process rclpy users.

- ``spin_node``: init rclpy, create the node, spin it on an executor until shutdown / Ctrl-C (or ``until()``),
  then clean up (node hook, executor, node, rclpy) on every exit path. A process still alive
  ``SLOW_STOP_S`` after rclpy was shut down writes every thread's stack to stderr (``faulthandler``): a node that
  does not stop on Ctrl-C (``ros2 launch`` escalates to SIGTERM after 5 s) says where it is stuck. A watcher thread
  wakes the executor once the context is shut down (``_wake_on_shutdown``: rclpy's SIGINT thread can leave an
  executor waiting on a dead context).
- ``context_or_default``: the context an in-process helper (benchmarks, soak harness) creates its node in: the
  caller's own context when given (tests: the ``ros_context`` fixture), else the global default context,
  initialised on first use (CLI).
- ``own_context``: a fresh ``rclpy.Context`` initialised for a ``with`` block and shut down after it (the tests'
  ``ros_context`` fixture).
"""
from __future__ import annotations

import contextlib
import faulthandler
import sys
import threading
from typing import Callable, Iterator, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

SLOW_STOP_S = 3.0   # below ros2 launch's SIGINT -> SIGTERM escalation (sigterm_timeout, 5 s)
SHUTDOWN_POLL_S = 0.25   # how often the watcher looks at the context (the executor's extra wake-ups: none)


def spin_node(node_factory: Callable[[], "rclpy.node.Node"], args: Optional[Sequence[str]] = None,
              executor: Callable[[], "rclpy.executors.Executor"] = SingleThreadedExecutor, *,
              until: Optional[Callable[["rclpy.node.Node"], bool]] = None, cleanup: Optional[Callable] = None,
              signal_handlers: bool = True, spin_period: float = 0.1) -> int:
    """Run one node in this process; returns 0.

    ``args``: rclpy's command line (None: sys.argv). ``executor``: a factory called after the node exists.
    Without ``until`` the executor spins until rclpy shuts down (SIGINT); with it, ``spin_once`` every
    ``spin_period`` s while rclpy is ok and ``until(node)`` is false. ``cleanup(node)`` runs first on every exit path
    (before the executor and the node are destroyed). ``signal_handlers=False`` leaves SIGINT/SIGTERM to the
    caller (rclpy installs none)."""
    init_kwargs = {} if signal_handlers else {"signal_handler_options": rclpy.signals.SignalHandlerOptions.NO}
    rclpy.init(args=args, **init_kwargs)
    node = ex = None
    stop_watch = threading.Event()
    try:
        node = node_factory()
        ex = executor()
        ex.add_node(node)
        threading.Thread(target=_wake_on_shutdown, args=(ex, stop_watch, signal_handlers), daemon=True,
                         name="wake_on_shutdown").start()
        if until is None:
            ex.spin()
        else:
            while rclpy.ok() and not until(node):
                ex.spin_once(timeout_sec=spin_period)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as e:
        # SIGINT's handler shut the context down while the executor was building its wait set or taking a message:
        # rclpy raises RCLError ("the given context is not valid") or, from the take, a pybind11 RuntimeError
        # ("Unable to convert call argument '0' to Python object"; fresh-clone CI, the planner under ros2 launch)
        # instead of ExternalShutdownException -- a clean shutdown too. While the context is ok, anything raises.
        if rclpy.ok() or type(e).__name__ not in ("RCLError", "RuntimeError"):
            raise
    finally:
        stop_watch.set()
        if signal_handlers:
            _ignore_further_sigint()
            # never cancelled: it covers the clean-up below and the interpreter's exit after it
            faulthandler.dump_traceback_later(SLOW_STOP_S, exit=False, file=sys.stderr)
        if node is not None and cleanup is not None:
            cleanup(node)
        if ex is not None:
            ex.shutdown()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def _wake_on_shutdown(ex, stop: threading.Event, dump_stacks: bool) -> None:
    """Wake ``ex`` while rclpy's context is shut down, until ``stop``; arm the stack dump when it goes down.

    rclpy's SIGINT handling (its deferred signal thread) first triggers the executors' guard conditions and only
    then shuts the contexts down, without the Python shutdown callbacks that would wake them again. An executor
    that wakes in between still finds its context ok, consumes the trigger and waits again; the C-level shutdown
    wakes nothing. A process started with SIGINT ignored (a script's ``&``, CI) gets no KeyboardInterrupt either,
    so only a timer or a message ends that wait, and on sim time after the /clock publisher has stopped none comes:
    session 16's CI saw the manipulation graph's perception and planner nodes keep running 60 s after the group's
    SIGINT, while the sim camera (the clock) had stopped cleanly. Once the context is down, every wake makes the
    executor raise ExternalShutdownException; a callback that does not return is named by the stack dump."""
    armed = False
    while not stop.wait(SHUTDOWN_POLL_S):
        if rclpy.ok():
            continue
        if dump_stacks and not armed:
            faulthandler.dump_traceback_later(SLOW_STOP_S, exit=False, file=sys.stderr)
        armed = True
        try:
            ex.wake()
        except Exception:   # the executor shut down between the check and the wake: spin has returned
            return


def _ignore_further_sigint() -> None:
    """Shutting down: a terminal's Ctrl-C reaches a launched node twice (the terminal's SIGINT to the foreground
    process group, then the one ``ros2 launch`` forwards). The second must not interrupt the clean-up
    (KeyboardInterrupt: exit code -2, launch reports "process has died"); the context is already shut down.
    ros2 launch still escalates to SIGTERM / SIGKILL if the clean-up hangs."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def context_or_default(context=None):
    """``context`` when given, else rclpy's global default context (initialised here when it is not yet)."""
    if context is not None:
        return context
    if not rclpy.ok():
        rclpy.init()
    return rclpy.get_default_context()


@contextlib.contextmanager
def own_context(args: Optional[Sequence[str]] = None) -> Iterator["rclpy.Context"]:
    """A fresh context, initialised for the block and shut down after it; never touches the global one."""
    ctx = rclpy.Context()
    rclpy.init(args=args, context=ctx)
    try:
        yield ctx
    finally:
        if ctx.ok():
            rclpy.shutdown(context=ctx)
