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

"""The ament linters a ROS reviewer runs, through `colcon test` as they run them (scripts/colcon_lint.sh).

One `colcon test --ctest-args -L linter` run (module fixture) in a fresh workspace; then one test per linter that
package.xml's ament_lint_common brings and CMakeLists.txt keeps: its ctest test must exist (ament_lint_auto added
it) and its xunit result must hold no failure. A failure lists the findings (file:line code message).
test_linter_detects_a_real_defect runs the linters' CLIs on a defective copy, so a green run means something.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
VENV_BIN = pathlib.Path(sys.prefix) / "bin"
SHARE = pathlib.Path(sys.prefix) / "share"
LINTERS = ("copyright", "flake8", "lint_cmake", "pep257", "xmllint")

_missing = [b for b in ("ament_flake8", "ament_pep257", "ament_copyright", "ament_xmllint", "ament_lint_cmake")
            if not (VENV_BIN / b).exists()]
if not (SHARE / "ament_lint_auto" / "cmake").is_dir():
    _missing.append("ament_lint_auto (CMake package)")
if not (VENV_BIN / "colcon").exists():
    _missing.append("colcon")
if shutil.which("xmllint") is None:
    _missing.append("xmllint (Debian libxml2-utils)")
pytestmark = pytest.mark.skipif(
    bool(_missing),
    reason=f"ament linters not installed in {sys.prefix}: {', '.join(_missing)} (make bootstrap runs "
           "scripts/install_ament_lint.sh when ../shared/vendor/ros2-jazzy-python-tools is present)")


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def colcon_lint(tmp_path_factory):
    ws = tmp_path_factory.mktemp("lint_ws")
    env = _env()
    out = subprocess.run(["bash", str(REPO / "scripts" / "colcon_lint.sh"), str(ws)], capture_output=True,
                         text=True, timeout=1200, env=env)
    build = ws / "build" / "trace_anything_ros"
    assert (build / "CTestTestfile.cmake").is_file(), f"configure failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    listed = subprocess.run(["ctest", "-N", "-L", "linter"], cwd=build, capture_output=True, text=True).stdout
    return {"out": out, "build": build, "ctest": listed}


def _findings(xunit: pathlib.Path):
    root = ET.parse(xunit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    bad = []
    for suite in suites:
        for case in suite.iter("testcase"):
            for kind in ("failure", "error"):
                for f in case.iter(kind):
                    bad.append(f"{case.get('name')}: {(f.get('message') or f.text or '').strip()[:300]}")
    return bad


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("linter", LINTERS)
def test_ament_linter_passes(colcon_lint, linter):
    assert f": {linter}\n" in colcon_lint["ctest"] + "\n", (
        f"ament_lint_auto did not add the {linter!r} test:\n{colcon_lint['ctest']}")
    xunit = colcon_lint["build"] / "test_results" / "trace_anything_ros" / f"{linter}.xunit.xml"
    assert xunit.is_file(), f"{linter} left no result:\n{colcon_lint['out'].stdout[-3000:]}"
    bad = _findings(xunit)
    assert not bad, f"{len(bad)} {linter} findings:\n" + "\n".join(bad[:60])


def _pep257_args():
    """The options CMakeLists.txt gives ament_pep257 (one source), without its directory exclusions."""
    m = re.search(r"^\s*ament_pep257\(([^)]*)\)", (REPO / "CMakeLists.txt").read_text(), flags=re.M)
    assert m, "CMakeLists.txt does not call ament_pep257()"
    args = m.group(1).split()
    return args[:args.index("--exclude")] if "--exclude" in args else args


@pytest.mark.parametrize("linter", ("flake8", "pep257", "copyright"))
def test_linter_detects_a_real_defect(tmp_path, linter):
    """The same configuration as CMakeLists.txt on a copy of a clean module with one defect: the linter must fail."""
    src = (REPO / "trace_anything_ros" / "field" / "basis.py").read_text()
    if linter == "flake8":
        bad = src + "\nimport os\n"  # F401
        cmd = [str(VENV_BIN / "ament_flake8"), "--config", str(REPO / ".flake8"), "mod.py"]
    elif linter == "pep257":
        bad = src + '\n\ndef f():\n    """  Leading blanks."""\n    return 1\n'  # D210
        cmd = [str(VENV_BIN / "ament_pep257"), *_pep257_args(), "--", "mod.py"]
    else:
        bad = src.split("limitations under the License.\n", 1)[1]  # header removed
        cmd = [str(VENV_BIN / "ament_copyright"), "mod.py"]
    (tmp_path / "mod.py").write_text(src)
    env = _env()
    good = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert good.returncode == 0, f"clean copy flagged:\n{good.stdout[-2000:]}\n{good.stderr[-2000:]}"
    (tmp_path / "mod.py").write_text(bad)
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0, f"{linter} missed the defect:\n{res.stdout[-2000:]}"
