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

"""Helpers of the tests that run the package as a lab does: a colcon workspace, its install/setup.sh, `ros2 launch`,
`launch_test` and the ros2 CLI (test_launch_graphs.py, test_readme_ros.py, test/launch/launch_graph.py).

- ``tools_missing``: why the ROS 2 tools cannot run here (None when they can): launch, launch_ros,
  launch_testing and ros2cli are no wheels; `make bootstrap` installs them from ../shared/vendor when it exists.
- ``workspace``: build/colcon_ws built once per test session with scripts/colcon_build.sh (`make colcon`; an
  incremental build takes ~2 s), so the tests run the installed package, not the checkout.
- ``ros_env``: the environment of a shell that sourced WORKSPACE/install/setup.sh (the venv is its underlay), with
  this test session's ROS_DOMAIN_ID and localhost discovery (conftest).
- ``bad_lines``: ERROR lines and tracebacks in a process's output.
- ``call_service`` / ``dump_parameters``: a node's parameters through its parameter services (every parameter,
  as Python values), the same way for a launched graph and the runner's.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = pathlib.Path(__file__).resolve().parent.parent
VENV_BIN = pathlib.Path(sys.executable).parent
WS = REPO / "build" / "colcon_ws"
BAD = ("[ERROR]", "Traceback (most recent call last)")
_BUILT: Dict[str, object] = {}


def tools_missing() -> Optional[str]:
    import importlib.util
    for mod in ("launch", "launch_ros", "launch_testing", "ros2cli", "ros2launch"):
        if importlib.util.find_spec(mod) is None:
            return (f"{mod} is not installed in {sys.prefix}: the ROS 2 tools have no wheels; `make bootstrap` "
                    "installs them from ../shared/vendor/ros2-jazzy-python-tools when that directory exists "
                    "(on a robot they come with ROS 2)")
    for exe in ("ros2", "launch_test", "colcon"):
        if not (VENV_BIN / exe).exists():
            return f"{VENV_BIN / exe} not found (make bootstrap)"
    return None


def workspace() -> pathlib.Path:
    """WS/install, built (once per session) from this checkout with scripts/colcon_build.sh."""
    if "install" not in _BUILT:
        t = time.monotonic()
        out = subprocess.run(["bash", str(REPO / "scripts" / "colcon_build.sh"), str(WS)], capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, f"colcon build failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        print(f"colcon build (incremental): {time.monotonic() - t:.1f} s")
        _BUILT["install"] = WS / "install"
    return _BUILT["install"]


def base_env() -> dict:
    """This process's environment as a fresh shell would have it: no paths of the dev venv's wiring."""
    drop = ("PYTHONPATH", "AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "CMAKE_PREFIX_PATH", "LD_LIBRARY_PATH",
            "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                  if pathlib.Path(p).resolve() != VENV_BIN.resolve())
    return env


def ros_env(install: pathlib.Path, **extra: str) -> dict:
    out = subprocess.run(["bash", "-c", f'. "{install}/setup.sh" && env -0'], capture_output=True, env=base_env(),
                         timeout=60)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    env = dict(kv.split("=", 1) for kv in out.stdout.decode().split("\0") if "=" in kv)
    env.update(extra)
    return env


def bad_lines(text: str) -> List[str]:
    return [ln for ln in text.splitlines() if any(b in ln for b in BAD)]


def call_service(node, executor, srv_type, name: str, request, timeout: float = 10.0):
    """One service call from ``node`` (spun by ``executor``); None when the service does not answer in time."""
    cli = node.create_client(srv_type, name)
    try:
        end = time.monotonic() + timeout
        while not cli.wait_for_service(timeout_sec=0.1):
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() > end:
                return None
        fut = cli.call_async(request)
        executor.spin_until_future_complete(fut, timeout_sec=max(0.1, end - time.monotonic()))
        return fut.result()
    finally:
        node.destroy_client(cli)


def dump_parameters(node, executor, target: str, timeout: float = 15.0) -> Dict[str, object]:
    """Every parameter of ``target`` (fully qualified node name) -> its value, read through its parameter
    services (what `ros2 param dump` reads)."""
    from rcl_interfaces.srv import GetParameters, ListParameters
    from rclpy.parameter import parameter_value_to_python
    listed = call_service(node, executor, ListParameters, f"{target}/list_parameters", ListParameters.Request(),
                          timeout)
    assert listed is not None, f"{target}/list_parameters did not answer"
    names = sorted(listed.result.names)
    got = call_service(node, executor, GetParameters, f"{target}/get_parameters", GetParameters.Request(names=names),
                       timeout)
    assert got is not None, f"{target}/get_parameters did not answer"
    values = {n: parameter_value_to_python(v) for n, v in zip(names, got.values)}
    return {n: list(v) if not isinstance(v, (str, bytes, bool, int, float, type(None))) else v
            for n, v in values.items()}
