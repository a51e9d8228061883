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

"""The package build: package.xml / CMakeLists.txt / setup.py, the bootstrapped venv, and a real colcon build.

test_colcon_build_as_a_lab_would builds this checkout the way a ROS lab does (`colcon build` in a workspace whose
src/ links to the repo, then `source install/setup.sh`) and imports our modules and the generated messages from
the install space (no .pth help), publishes and receives a message there.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
IN_REPO_VENV = pathlib.Path(sys.prefix).resolve() == VENV.resolve()
NODES = ("trajectory_field_node", "manipulation_planner_node", "sim_camera_node")


def test_package_xml_is_a_valid_format3_interface_package():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed (make bootstrap)")
    pkg = catkin_pkg.parse_package(str(REPO / "package.xml"))  # validates (e.g. maintainer e-mail)
    assert pkg.package_format == 3
    assert pkg.name == "trace_anything_ros"
    assert pkg.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]
    names = lambda deps: {d.name for d in deps}  # noqa: E731
    build = names(pkg.buildtool_depends) | names(pkg.build_depends)
    run = names(pkg.exec_depends) | names(pkg.build_export_depends)
    assert {"ament_cmake", "rosidl_default_generators"} <= build
    assert {"builtin_interfaces", "std_msgs", "geometry_msgs", "sensor_msgs", "nav_msgs"} <= build & run
    assert {"rosidl_default_runtime", "rclpy", "visualization_msgs", "diagnostic_msgs", "std_srvs",
            "lifecycle_msgs", "launch", "launch_ros", "tf2_ros_py", "python3-numpy", "python3-opencv",
            "rcl_interfaces", "rosgraph_msgs", "ament_index_python"} <= run
    assert {"ament_cmake_pytest", "launch_testing"} <= names(pkg.test_depends)
    # every message package a .msg/.srv refers to is declared
    used = set()
    for f in list((REPO / "msg").glob("*.msg")) + list((REPO / "srv").glob("*.srv")):
        used |= set(re.findall(r"^\s*([a-z_]+)/[A-Z]\w*", f.read_text(), flags=re.M))
    assert used <= build, f"undeclared interface dependencies: {used - build}"


def test_cmakelists_installs_what_the_launch_files_need():
    text = (REPO / "CMakeLists.txt").read_text()
    assert "rosidl_generate_interfaces(${PROJECT_NAME}" in text
    assert "TAR_INSTALL_PYTHON_PACKAGE" in text
    assert not re.search(r"^\s*ament_python_install_package\(", text, flags=re.M)
    for node in NODES:
        assert f"scripts/nodes/{node}" in text


@pytest.mark.parametrize("node", NODES)
def test_node_launchers_call_the_ros_modules(node):
    path = REPO / "scripts" / "nodes" / node
    assert os.access(path, os.X_OK), f"{path} not executable"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env python3")
    assert f"from trace_anything_ros.ros.{node} import main" in text


def test_bootstrapped_venv_imports_everything():
    """In the repo's .venv (what make test uses) ROS must work: a broken bootstrap fails here, not in skips."""
    if not IN_REPO_VENV:
        pytest.skip(f"not running in the bootstrapped venv {VENV} (sys.prefix={sys.prefix})")
    import rclpy  # noqa: F401
    import trace_anything_ros
    import trace_anything_ros.field.basis  # noqa: F401
    from trace_anything_ros.msg import TrajectoryField  # noqa: F401
    from trace_anything_ros.srv import SetObjectGoal  # noqa: F401

    assert pathlib.Path(trace_anything_ros.__file__).resolve() == REPO / "trace_anything_ros" / "__init__.py"
    assert os.environ.get("ROS_DOMAIN_ID") and os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
    import torch

    assert torch.__version__.startswith("2.13.0") and not torch.version.cuda
    script = VENV / "bin" / "trace-anything-ros"
    assert script.is_file(), "console script missing (pip install -e . --no-deps)"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "demo" in out.stdout


@pytest.mark.ros
def test_trajectory_field_between_two_processes():
    """A child process (same venv, through the ros-wheels-bootstrapper re-exec) publishes; we subscribe."""
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from trace_anything_ros.msg import TrajectoryField

    child = textwrap.dedent(
        """
        import sys, time
        import numpy as np, rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
        from trace_anything_ros.msg import TrajectoryField
        rclpy.init()
        node = rclpy.create_node('tar_child_pub')
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pub = node.create_publisher(TrajectoryField, 'tar_cross_process', qos)
        msg = TrajectoryField(num_frames=2, num_control_points=4, height=3, width=5, encoding='32FC1')
        msg.control_points = np.arange(2 * 4 * 3 * 5 * 3, dtype='<f4').tobytes()
        pub.publish(msg)
        t = time.monotonic()
        while time.monotonic() - t < 30 and sys.stdin.readline().strip() != 'done':
            pass
        node.destroy_node(); rclpy.shutdown()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("tar_parent_sub", context=context)
        got = []
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(TrajectoryField, "tar_cross_process", got.append, qos)
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(node)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline and proc.poll() is None:
            ex.spin_once(timeout_sec=0.1)
        assert got, f"nothing received from the child process (exit code {proc.poll()})"
        m = got[0]
        assert (m.num_frames, m.num_control_points, m.height, m.width) == (2, 4, 3, 5)
        np.testing.assert_array_equal(np.frombuffer(m.control_points, "<f4"), np.arange(360, dtype="<f4"))
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        try:
            proc.communicate("done\n", timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_colcon_build_as_a_lab_would(tmp_path):
    colcon = pathlib.Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.skip(f"colcon not installed in {sys.prefix} (requirements/dev.txt; make bootstrap)")
    ws = tmp_path / "ws"
    script = REPO / "scripts" / "colcon_build.sh"
    t = time.monotonic()
    out = subprocess.run(["bash", str(script), str(ws)], capture_output=True, text=True, timeout=840)
    build_s = time.monotonic() - t
    assert out.returncode == 0, f"colcon build failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    print(f"colcon build: {build_s:.0f} s")

    install = ws / "install"
    pkg_share = install / "trace_anything_ros" / "share" / "trace_anything_ros"
    assert (pkg_share / "package.xml").is_file()
    for node in NODES:
        exe = install / "trace_anything_ros" / "lib" / "trace_anything_ros" / node
        assert exe.is_file() and os.access(exe, os.X_OK), exe
    for d in ("launch", "config", "worlds"):
        if (REPO / d).is_dir() and any((REPO / d).iterdir()):
            assert (pkg_share / d).is_dir(), f"{d}/ not installed to share/"
    launch_files = sorted(p.name for p in (REPO / "launch").glob("*.launch.py"))
    assert launch_files and all((pkg_share / "launch" / f).is_file() for f in launch_files), launch_files
    assert not list(pkg_share.rglob("__pycache__")), "__pycache__ installed to share/"

    check = textwrap.dedent(
        f"""
        import os, sys
        import numpy as np
        import trace_anything_ros, trace_anything_ros.field.basis as basis
        from trace_anything_ros.msg import TrajectoryField
        from trace_anything_ros.srv import SetObjectGoal
        import trace_anything_ros.msg._trajectory_field as gen
        install = {str(install.resolve())!r}
        for mod in (trace_anything_ros, basis, gen):
            assert os.path.realpath(mod.__file__).startswith(install), (mod.__name__, mod.__file__)
        assert hasattr(trace_anything_ros, '__version__'), 'generated __init__.py won over ours'
        from ament_index_python.packages import get_package_share_directory
        assert get_package_share_directory('trace_anything_ros').startswith(install)
        import rclpy
        from rclpy.serialization import serialize_message, deserialize_message
        m = TrajectoryField(num_frames=1, encoding='32FC1')
        m.control_points = np.ones(12, '<f4').tobytes()
        assert deserialize_message(serialize_message(m), TrajectoryField) == m
        rclpy.init(); n = rclpy.create_node('tar_colcon_check'); n.create_publisher(TrajectoryField, 'x', 1)
        n.destroy_node(); rclpy.shutdown()
        print('COLCON_INSTALL_OK')
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH")}
    env["PATH"] = f"{sys.prefix}/bin:{env.get('PATH', '')}"
    env["AMENT_PREFIX_PATH"] = sys.prefix  # the "underlay": the venv with the Jazzy wheels
    cmd = f". {install}/setup.sh && cd {tmp_path} && {sys.executable} -c {_sh_quote(check)}"
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0 and "COLCON_INSTALL_OK" in res.stdout, f"{res.stdout}\n{res.stderr}"


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"
