"""`trace-anything-ros run --graph perception --params config/perception.yaml`: start the nodes of a graph as
separate processes (the same nodes, parameter files and remaps as the launch files), drive the lifecycle nodes
through configure -> activate via their change_state services, forward SIGINT/SIGTERM, exit cleanly.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import List

from .graph import GRAPHS, graph, param_files


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
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run until "
                        "interrupted)")


def node_command(spec, args) -> List[str]:
    cmd = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    if args.namespace:
        cmd += ["-r", f"__ns:={'/' + args.namespace.strip('/')}"]
    for f in param_files(spec) + [os.path.abspath(p) for p in args.params]:
        cmd += ["--params-file", f]
    # the first matching remap rule wins in ROS 2: the user's remaps go before the graph's
    for a, b in [tuple(r.split(":=", 1)) for r in args.remap] + list(spec.remaps.items()):
        cmd += ["-r", f"{a}:={b}"]
    if args.use_sim_time:
        cmd += ["-p", "use_sim_time:=true"]
    for p in args.param:
        cmd += ["-p", p]
    return cmd


def _log(msg: str) -> None:
    print(f"[run] {msg}", file=sys.stderr, flush=True)


def main(args) -> int:
    specs = [s for s in graph(args.graph) if not args.only or s.name in args.only]
    procs = []
    stop = {"sig": None}

    def on_signal(signum, _frame):
        stop["sig"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    env = dict(os.environ)
    try:
        for s in specs:
            cmd = node_command(s, args)
            _log(" ".join(cmd))
            procs.append((s, subprocess.Popen(cmd, env=env, start_new_session=True)))
        rc = _drive(specs, procs, args, stop)
    finally:
        _stop_all(procs)
        for s, h in old.items():
            signal.signal(s, h)
    codes = [p.returncode for _, p in procs]
    _log(f"exit codes: {dict((s.name, c) for (s, _), c in zip(procs, codes))}")
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


def _stop_all(procs, timeout: float = 10.0) -> None:
    for _, p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)  # rclpy nodes shut down cleanly on SIGINT
    end = time.monotonic() + timeout
    for _, p in procs:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
