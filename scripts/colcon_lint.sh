#!/usr/bin/env bash
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

# The ament linters as a ROS reviewer runs them: `colcon test --packages-select trace_anything_ros` of the tests that
# ament_lint_auto adds (ctest label `linter`: copyright, flake8, lint_cmake, pep257, xmllint), then
# `colcon test-result --verbose`. Exit status 0 when every linter passes. Usage: scripts/colcon_lint.sh [WORKSPACE]
# (default build/colcon_lint_ws). `make lint` runs it; test/test_ament_lint.py runs it within `make test`.
# - src/trace_anything_ros is a fresh copy of the package's files (git's tracked and untracked-but-not-ignored
#   files), as a lab's clone would be: the lint hooks glob the whole source tree at configure time, and this
#   checkout's .venv/ and build/ (with links back to the checkout) hold ~460k Python files (a minute per glob).
# - The package is only configured (BUILD_TESTING=ON), not compiled: the linters read the sources, and configuring
#   takes seconds where the interface build takes minutes. A full `colcon build` + `colcon test` runs the same
#   linters plus the pytest suite (which `make test` runs directly).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WS="${1:-$ROOT/build/colcon_lint_ws}"
VENV="${VENV:-$ROOT/.venv}"
[[ -x "$VENV/bin/ament_flake8" && -f "$VENV/share/ament_lint_auto/cmake/ament_lint_auto-extras.cmake" ]] \
  || { echo "the ament linters are not in $VENV (run make bootstrap: scripts/install_ament_lint.sh)" >&2; exit 2; }
mkdir -p "$WS/src"
WS="$(cd "$WS" && pwd)"
VENV="$(cd "$VENV" && pwd)"
SRC="$WS/src/trace_anything_ros"
rm -rf "$SRC" "$SRC.tmp"
mkdir -p "$SRC.tmp"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | "$VENV/bin/python" -c 'import os, sys; sys.stdout.write("".join(p + "\0" for p in sys.stdin.read().split("\0") if p and os.path.isfile(p)))' \
    | tar --null -T - -cf - | tar -xf - -C "$SRC.tmp")
else
  tar -C "$ROOT" --exclude=./.venv --exclude=./build --exclude=./out --exclude=./.git -cf - . | tar -xf - -C "$SRC.tmp"
fi
mv "$SRC.tmp" "$SRC"
cd "$WS"
export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
unset PYTHONPATH COLCON_PREFIX_PATH
# configure only: a target that does not exist, skipped (colcon then neither builds nor installs)
colcon --log-base "$WS/log" build --packages-select trace_anything_ros \
  --base-paths "$WS/src" --build-base "$WS/build" --install-base "$WS/install" \
  --event-handlers console_direct- console_cohesion+ \
  --cmake-target tar_configure_only --cmake-target-skip-unavailable \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DPython3_FIND_VIRTUALENV=ONLY -DBUILD_TESTING=ON -Wno-dev
rm -rf "$WS/build/trace_anything_ros/test_results"
colcon --log-base "$WS/log" test --packages-select trace_anything_ros \
  --base-paths "$WS/src" --build-base "$WS/build" --install-base "$WS/install" \
  --event-handlers console_direct- console_cohesion+ --ctest-args -L linter --output-on-failure || true
exec colcon test-result --test-result-base "$WS/build/trace_anything_ros" --verbose
