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

"""The README's ROS commands, run verbatim: the block after ``<!-- test_readme_ros: verbatim -->`` in README.md
("In a ROS 2 workspace"), line by line, in a shell that sourced what the block sources, so the README cannot drift
from what works.

  - a line that only sources a file (``. X``) applies to the lines after it (bash: ``. X && <line>``);
  - a line ending in ``&`` runs in the background in its own process group (as a terminal job), and is stopped at
    the end with SIGINT to the whole group, as a terminal's Ctrl-C does (the nodes get that SIGINT and the one
    ``ros2 launch`` forwards): exit code 0, no ERROR line or traceback from start to Ctrl-C;
  - ``ros2 lifecycle get`` / ``ros2 param get`` lines are retried until their ``# prints:`` text appears (at most
    30 s after the launch started: the acceptance's "active within 30 s"); other lines must print it at once;
  - ``ros2 topic hz`` runs 12 s, then Ctrl-C; it must print a rate (> 0: the command works on the launched graph;
    the >= 2 Hz bound of the acceptance is asserted once, in test_launch_graphs.py's manipulation launch test).
The ros2 daemon these commands start is stopped afterwards (``ros2 daemon stop``).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from launch_helpers import REPO, bad_lines, base_env, tools_missing

MARK = "<!-- test_readme_ros: verbatim -->"
MIN_HZ = 0.1
ACTIVE_WITHIN_S = 30.0


def readme_block():
    text = (REPO / "README.md").read_text()
    assert MARK in text, f"README.md lost its {MARK} block"
    m = re.search(r"```bash\n(.*?)```", text[text.index(MARK):], flags=re.S)
    assert m, "no bash block after the marker"
    lines = []
    for raw in m.group(1).splitlines():
        cmd, _, comment = raw.partition("  #")
        cmd = cmd.strip()
        if cmd:
            expect = comment.split("prints:", 1)[1].strip() if "prints:" in comment else None
            lines.append((cmd, expect))
    return lines


def test_readme_block_has_the_lab_commands():
    cmds = " ; ".join(c for c, _ in readme_block())
    for need in ("make colcon", "install/setup.sh", "ros2 launch trace_anything_ros", "ros2 lifecycle get",
                 "ros2 param get", "ros2 topic hz"):
        assert need in cmds, need
    # every launch file the README names exists (its arguments: test_readme_launch_arguments_are_declared)
    text = (REPO / "README.md").read_text()
    for name in set(re.findall(r"ros2 launch trace_anything_ros (\S+\.launch\.py)", text)):
        assert (REPO / "launch" / name).is_file(), name


@pytest.mark.launch_testing
def test_readme_launch_arguments_are_declared():
    """Every ``name:=value`` the README passes to ``ros2 launch trace_anything_ros X.launch.py`` is a launch argument
    X declares (read from the LaunchDescription the file generates; ros2 launch would reject an unknown one)."""
    import importlib.util
    text = (REPO / "README.md").read_text().replace("\\\n", " ")   # join continued shell lines
    checked = 0
    for m in re.finditer(r"ros2 launch trace_anything_ros (\S+\.launch\.py)([^\n#&]*)", text):
        used = re.findall(r"(\w+):=", m.group(2))
        if not used:
            continue
        spec = importlib.util.spec_from_file_location(f"readme_{checked}", REPO / "launch" / m.group(1))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        declared = {a.name for a in mod.generate_launch_description().get_launch_arguments()}
        assert set(used) <= declared, (m.group(1), sorted(set(used) - declared))
        checked += 1
    assert checked >= 1, "the README passes no launch argument any more: drop or update this test"


def _sh(prefix: str, cmd: str) -> list:
    return ["bash", "-c", f"{prefix}{cmd}"]


@pytest.mark.launch_testing
@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_ros_commands_run_verbatim(tmp_path):
    why = tools_missing()
    if why:
        pytest.skip(why)
    env = base_env()
    env["PYTHONUNBUFFERED"] = "1"
    prefix = ""
    background = []
    t_launch = None
    results = []
    try:
        for cmd, expect in readme_block():
            if cmd.startswith(". ") and "&&" not in cmd and ";" not in cmd:
                prefix += f"{cmd} && "
                continue
            if cmd.endswith("&"):
                log = open(tmp_path / f"bg{len(background)}.log", "w+")
                p = subprocess.Popen(_sh(prefix, cmd[:-1].strip()), cwd=REPO, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
                background.append((cmd, p, log))
                t_launch = time.monotonic()
                continue
            if cmd.startswith("ros2 topic hz"):
                p = subprocess.Popen(_sh(prefix, cmd), cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
                time.sleep(12.0)
                os.killpg(p.pid, signal.SIGINT)
                out = p.communicate(timeout=30)[0]
                rates = [float(r) for r in re.findall(r"average rate: ([0-9.]+)", out)]
                results.append((cmd, rates))
                assert rates and rates[-1] >= MIN_HZ, f"{cmd}:\n{out}"
                if expect:
                    assert expect in out, f"{cmd}:\n{out}"
                continue
            retry = cmd.startswith(("ros2 lifecycle get", "ros2 param get")) and t_launch is not None
            t_cmd = time.monotonic()
            while True:
                out = subprocess.run(_sh(prefix, cmd), cwd=REPO, env=env, capture_output=True, text=True,
                                     timeout=600)
                text = out.stdout + out.stderr
                ok = out.returncode == 0 and (expect is None or expect in text)
                if ok or not retry or time.monotonic() - t_launch > ACTIVE_WITHIN_S:
                    break
                time.sleep(1.0)
            results.append((cmd, f"{time.monotonic() - t_cmd:.1f} s", text.strip().splitlines()[-1:]))
            assert ok, f"{cmd} (exit {out.returncode}, expected {expect!r}):\n{text[-3000:]}"
            if retry:
                results.append(("  after", f"{time.monotonic() - t_launch:.1f} s"))
    finally:
        for cmd, p, log in background:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        subprocess.run(_sh(prefix, "ros2 daemon stop"), cwd=REPO, env=env, capture_output=True, timeout=60)
        for r in results:
            print(*r)
    for cmd, p, log in background:
        log.seek(0)
        text = log.read()
        assert p.returncode == 0, f"{cmd}: exit {p.returncode}\n{text[-5000:]}"
        assert bad_lines(text) == [], f"{cmd}:\n{text[-5000:]}"
        assert "process has died" not in text and "RANDOM" not in text, text[-5000:]
