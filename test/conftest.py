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

"""Shared pytest setup for trace_anything_ros.

- ROS isolation, set before anything imports rclpy: DDS discovery on localhost only and a per-run
  ``ROS_DOMAIN_ID`` in 100..199 (from the pid), so parallel test runs on one machine do not see each other.
- ``MUJOCO_GL=egl`` for offscreen rendering without a display.
- Stale Fast DDS shared-memory segments (of processes killed with SIGKILL, no live process maps them) are removed
  before anything starts, as ``fastdds shm clean`` would.
- Markers (registered in pytest.ini): ``ros`` tests are skipped with the import error as reason when rclpy or the
  generated ``trace_anything_ros.msg`` cannot be imported; ``gpu`` without CUDA; ``launch_testing`` without
  launch_testing; ``sim`` without MuJoCo; ``official_weights`` unless ``TRACE_ANYTHING_WEIGHTS`` names the official
  checkpoint file. Never silently: the reason appears in ``pytest -rs``.
- Fixtures: ``clean_stale_shm`` (that clean-up, for a test that killed ROS processes with SIGKILL),
  ``shared_dir`` (``$TRACE_ANYTHING_SHARED`` or ``<repo>/../shared``), ``fixtures_dir``, ``opencv_data_dir``
  (opencv-doc sample data: vtest.avi, ...), ``repo_root``, ``ros_context`` (a fresh rclpy context per test module:
  every in-process node and executor of a test takes ``context=ros_context``; nothing in the tests initialises
  rclpy's global default context, so the modules do not depend on their order).
"""
from __future__ import annotations

import importlib
import logging
import os
import pathlib

import pytest

# --- environment, before any rclpy import ------------------------------------------------------------------
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
if "TRACE_ANYTHING_TEST_DOMAIN_ID" in os.environ:  # explicit override for debugging with ros2 CLI elsewhere
    os.environ["ROS_DOMAIN_ID"] = os.environ["TRACE_ANYTHING_TEST_DOMAIN_ID"]
else:
    os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")


def _clean_stale_fastdds_shm(shm: str = "/dev/shm") -> list:
    """What ``fastdds shm clean`` does (the CLI is not in the wheels): remove Fast DDS shared-memory segments and
    port semaphores that no live process maps -- left by processes killed with SIGKILL. A participant that later
    gets such a port can hang in its stale lock (seen in CI: a node that never answered its lifecycle services).
    Only this user's files can go (/dev/shm is sticky); a segment in use is always mapped by its owner."""
    import glob

    names = glob.glob(os.path.join(shm, "fastrtps_*")) + glob.glob(os.path.join(shm, "sem.fastrtps_*"))
    if not names:
        return []
    mapped = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps) as f:
                mapped.update(line.split(None, 5)[-1].strip() for line in f if shm in line)
        except OSError:  # gone meanwhile, or another user's process (its files are not ours to remove)
            continue
    removed = []
    for path in names:
        owner = path[:-3] if path.endswith("_el") else path        # "<segment>_el": the segment's lock file
        if owner in mapped or path in mapped:
            continue
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


_clean_stale_fastdds_shm()

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

# launch_testing's pytest plugin (loaded in every run where the vendored ROS tools are installed) imports launch,
# whose logging module makes every logger created afterwards a LaunchLogger with propagate=False: our modules'
# warnings would then bypass pytest's caplog (and the root logger) in this process only -- the nodes, the runner
# and a user's Python never import launch. Give this process the standard logger class back.
if logging.getLoggerClass() is not logging.Logger:
    logging.setLoggerClass(logging.Logger)
    for _name, _lg in list(logging.root.manager.loggerDict.items()):
        if _name.startswith("trace_anything_ros") and isinstance(_lg, logging.Logger):
            _lg.propagate = True


def _probe(modules: list[str]) -> str | None:
    """None when every module imports, else the first failure as a skip reason."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or OSError/RuntimeError from a typesupport library
            return f"cannot import {name}: {type(exc).__name__}: {exc}"
    return None


_probe_cache: dict[str, str | None] = {}


def _reason(key: str) -> str | None:
    if key not in _probe_cache:
        if key == "ros":
            reason = _probe(["rclpy", "trace_anything_ros.msg", "trace_anything_ros.srv"])
            if reason:
                reason += " (run `make bootstrap` to build the interfaces into .venv)"
        elif key == "gpu":
            reason = _probe(["torch"])
            if reason is None:
                import torch

                reason = None if torch.cuda.is_available() else "no CUDA GPU (torch.cuda.is_available() is False)"
        elif key == "launch_testing":
            reason = _probe(["launch", "launch_ros", "launch_testing"])
            if reason:
                reason += (" (launch/launch_testing are not on PyPI; they come with a ROS 2 install, and `make "
                           "bootstrap` installs them from ../shared/vendor/ros2-jazzy-python-tools when it exists)")
        elif key == "sim":
            reason = _probe(["mujoco"])
        elif key == "official_weights":
            path = os.environ.get("TRACE_ANYTHING_WEIGHTS", "")
            if not path:
                reason = ("TRACE_ANYTHING_WEIGHTS is not set (the official trace_anything.pt, 2.6 GB, CC BY-NC 4.0, is "
                          "never bundled or downloaded: point the variable at your copy to run these tests)")
            elif not os.path.isfile(path):
                reason = f"TRACE_ANYTHING_WEIGHTS={path} is not a file"
            else:
                reason = _probe(["torch"])
        else:
            reason = None
        _probe_cache[key] = reason
    return _probe_cache[key]


def pytest_collection_modifyitems(config, items):
    for item in items:
        for key in ("ros", "gpu", "launch_testing", "sim", "official_weights"):
            if item.get_closest_marker(key) is not None:
                reason = _reason(key)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=f"[{key}] {reason}"))


def pytest_report_header(config):
    return [
        f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} "
        f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']} "
        f"MUJOCO_GL={os.environ['MUJOCO_GL']}"
    ]


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


def _shared_dir() -> pathlib.Path:
    env = os.environ.get("TRACE_ANYTHING_SHARED")
    return pathlib.Path(env).resolve() if env else (REPO_ROOT.parent / "shared").resolve()


@pytest.fixture
def clean_stale_shm():
    """``_clean_stale_fastdds_shm`` for a test that had to kill ROS processes with SIGKILL: call it once they are
    gone, so that no later participant meets their locked shared-memory ports."""
    return _clean_stale_fastdds_shm


@pytest.fixture(scope="module")
def ros_context():
    """A fresh, initialised ``rclpy.Context`` for one test module, shut down after the module's last test."""
    from trace_anything_ros.ros.node_main import own_context

    with own_context() as ctx:
        yield ctx


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """The shared directory beside the checkout (or $TRACE_ANYTHING_SHARED); skips with a reason when absent."""
    path = _shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared dir {path} not found (set TRACE_ANYTHING_SHARED or place it beside the checkout)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir) -> pathlib.Path:
    path = shared_dir / "fixtures"
    if not path.is_dir():
        pytest.skip(f"fixtures dir {path} not found")
    return path


OPENCV_DATA_DIRS = (
    pathlib.Path("/usr/share/doc/opencv-doc/examples/data"),
    REPO_ROOT / "build/opencv-doc/usr/share/doc/opencv-doc/examples/data",  # extracted by scripts/bootstrap.sh
)


@pytest.fixture(scope="module")
def goal_pair_episode():
    """``(spec, current frame, goal frame)`` of ``sim.closed_loop`` episode 103 (one of the goal-pair tuning episodes
    100..139), rendered once per module: the current RGB-D frame and the goal image after the object's move."""
    pytest.importorskip("mujoco", reason="MuJoCo is needed to render the goal-pair episode")
    from trace_anything_ros.sim import closed_loop as cl

    spec = cl.sample_episode(103)
    scene, cur, goal = cl._render_pair(spec)
    scene.close()
    return spec, cur, goal


@pytest.fixture(scope="session")
def opencv_data_dir() -> pathlib.Path:
    """opencv-doc's sample data (vtest.avi: real video, static camera, people walking)."""
    for path in OPENCV_DATA_DIRS:
        if (path / "vtest.avi").is_file():
            return path
    pytest.skip(f"opencv-doc sample data not found in {[str(p) for p in OPENCV_DATA_DIRS]} (run make bootstrap)")
