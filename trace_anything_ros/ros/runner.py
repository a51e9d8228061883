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

"""`trace-anything-ros run --graph perception --params config/perception.yaml`: start the nodes of a graph as
separate processes (the same nodes, parameter files and remaps as the launch files), drive the lifecycle nodes
through configure -> activate via their change_state services, forward SIGINT/SIGTERM, exit cleanly.

No node outlives the runner: every child runs in its own process group (stopped with ``killpg``: SIGINT, then
SIGTERM, then SIGKILL) on every exit path (normal end, SIGINT/SIGTERM, an exception), and asks the kernel for
SIGTERM when the runner dies without cleaning up (SIGKILL, crash): ``prctl(PR_SET_PDEATHSIG)`` in the child
before it execs. A parameter file given twice (the graph's own file passed again with --params) is passed once.
Parameters: the files of ``graph.node_parameter_files`` (graph files, graph settings, --params files,
--use-sim-time), the same as the launch files', then --param.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import List

from .graph import GRAPHS, config_dir, graph, node_parameter_files, unique_param_files  # noqa: F401


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--graph", default="perception", choices=sorted(GRAPHS), help="which node graph to start")
    parser.add_argument("--params", action="append", default=[],
                        help="extra parameter file(s) for every node (after the graph's own files)")
    parser.add_argument("--namespace", default="", help="namespace of every node")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="extra topic remap for every node (e.g. image:=/my_cam/image)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="parameter override for every node (e.g. model.device:=cuda)")
    parser.add_argument("--use-sim-time", action="store_true", help="use_sim_time:=true for every node")
    parser.add_argument("--no-activate", action="store_true", help="leave lifecycle nodes unconfigured")
    parser.add_argument("--only", action="append", default=[], help="start only these nodes of the graph")
    parser.add_argument("--transition-timeout", type=float, default=300.0,
                        help="seconds to wait for each lifecycle transition (model loading can be slow)")
    parser.add_argument("--large-messages", action="store_true",
                        help="give every node the Fast DDS profile config/fastdds_large_messages.xml (large shared-"
                        "memory segment for the ~21 MB field; FASTRTPS_DEFAULT_PROFILES_FILE, unless already set)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run until "
                        "interrupted)")


def node_command(spec, args) -> List[str]:
    """``python -m <module> --ros-args ...`` with the parameter files of ``graph.node_parameter_files`` -- what the
    launch files pass, file for file. ``--param NAME:=VALUE`` stays a ``-p`` rule: the user's last word."""
    cmd = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    if args.namespace:
        cmd += ["-r", f"__ns:={'/' + args.namespace.strip('/')}"]
    user_params = {"use_sim_time": True} if args.use_sim_time else None
    for f in node_parameter_files(spec, user_files=args.params, user_params=user_params, namespace=args.namespace):
        cmd += ["--params-file", f]
    for p in args.param:
        cmd += ["-p", p]
    # the first matching remap rule wins in ROS 2: the user's remaps go before the graph's
    for a, b in [tuple(r.split(":=", 1)) for r in args.remap] + list(spec.remaps.items()):
        cmd += ["-r", f"{a}:={b}"]
    return cmd


LARGE_MESSAGES_PROFILE = os.path.join(config_dir(), "fastdds_large_messages.xml")


def node_env(args) -> dict:
    """The nodes' environment: the runner's, plus the large-message Fast DDS profile with ``--large-messages``
    (a profile the user already chose through FASTRTPS_DEFAULT_PROFILES_FILE is kept)."""
    env = dict(os.environ)
    if getattr(args, "large_messages", False) and not env.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = LARGE_MESSAGES_PROFILE
    return env


PR_SET_PDEATHSIG = 1
_LIBC = None


def _child_setup(parent_pid: int):
    """preexec_fn: SIGTERM to the child when the runner dies (any way, SIGKILL included)."""
    def setup():
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the runner died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return setup


def _load_libc():
    global _LIBC
    if _LIBC is None and sys.platform.startswith("linux"):
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before fork: nothing to load in the child
        except OSError:
            _LIBC = None
    return _LIBC


class _Interrupted(Exception):
    """Raised by the signal handler so that a blocking wait (service discovery, a lifecycle transition that can
    take minutes) ends at once."""


def _log(msg: str) -> None:
    print(f"[run] {msg}", file=sys.stderr, flush=True)


def main(args) -> int:
    specs = [s for s in graph(args.graph) if not args.only or s.name in args.only]
    procs = []
    stop = {"sig": None}

    stop["stopping"] = False

    def on_signal(signum, _frame):
        first = stop["sig"] is None
        stop["sig"] = signum
        if first and not stop["stopping"]:
            raise _Interrupted(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    env = node_env(args)
    _load_libc()
    rc = 1
    try:
        for s in specs:
            cmd = node_command(s, args)
            # own session / process group (a terminal's Ctrl-C reaches the runner only; it stops the group)
            p = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_child_setup(os.getpid()))
            procs.append((s, p))
            _log(f"started {s.name} (pid {p.pid}): " + " ".join(cmd))
        rc = _drive(specs, procs, args, stop)
    except _Interrupted as e:
        _log(f"signal {int(e.args[0])}: stopping")
        rc = 0
    finally:
        stop["stopping"] = True
        _stop_all(procs)
        for s, h in old.items():
            signal.signal(s, h)
    codes = [p.returncode for _, p in procs]
    _log(f"exit codes: {dict(zip((s.name for s, _ in procs), codes))}")
    return rc


def _drive(specs, procs, args, stop) -> int:
    managed = [s for s in specs if s.lifecycle]
    if managed and not args.no_activate:
        import rclpy
        from rclpy.node import Node

        from .lifecycle_client import LifecycleClient

        rclpy.init(args=None, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        node = Node("trace_anything_ros_runner")
        try:
            for s in managed:
                target = (("/" + args.namespace.strip("/")) if args.namespace else "") + "/" + s.name
                lc = LifecycleClient(node, target)
                if not lc.wait_for_service(60.0):
                    _log(f"{target}: lifecycle services did not appear")
                    return 1
                for tr in ("configure", "activate"):
                    if stop["sig"] is not None:
                        return 0
                    ok = lc.change_state(tr, timeout=args.transition_timeout)
                    _log(f"{target}: {tr} -> {'ok' if ok else 'FAILED'} (state {lc.get_state()})")
                    if not ok:
                        return 1
        finally:
            node.destroy_node()
            rclpy.shutdown()
    t0 = time.monotonic()
    while stop["sig"] is None:
        for s, p in procs:
            if p.poll() is not None:
                _log(f"{s.name} exited with {p.returncode}")
                return p.returncode or 0 if p.returncode == 0 else 1
        if args.duration and time.monotonic() - t0 > args.duration:
            break
        time.sleep(0.1)
    return 0


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    """``sig`` to the child's process group (the node and anything it started); to the child alone if that fails."""
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass


def _stop_all(procs, timeout: float = 10.0) -> None:
    for _, p in procs:
        if p.poll() is None:
            _signal_group(p, signal.SIGINT)  # rclpy nodes shut down cleanly on SIGINT
    end = time.monotonic() + timeout
    for _, p in procs:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGTERM)
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()
        if _group_alive(p.pid):  # leftovers of the group (a grandchild that ignored SIGINT) go too
            _signal_group(p, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
