#!/usr/bin/env bash
# colcon build of this checkout as a ROS lab would do it: a workspace whose src/ links to the repository,
# built against the venv's Jazzy wheels (the "underlay"). Usage: scripts/colcon_build.sh [WORKSPACE]
# (default build/colcon_ws). Afterwards: `. WORKSPACE/install/setup.sh`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WS="${1:-$ROOT/build/colcon_ws}"
VENV="${VENV:-$ROOT/.venv}"
[[ -x "$VENV/bin/colcon" ]] || { echo "colcon not in $VENV (run make bootstrap)" >&2; exit 1; }
mkdir -p "$WS/src"
WS="$(cd "$WS" && pwd)"
ln -sfn "$ROOT" "$WS/src/trace_anything_ros"
cd "$WS"
export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
export MAKEFLAGS="-j${JOBS:-2}" PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH COLCON_PREFIX_PATH
exec colcon --log-base "$WS/log" build \
  --base-paths "$WS/src" --build-base "$WS/build" --install-base "$WS/install" \
  --event-handlers console_direct- console_cohesion+ \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DPython3_FIND_VIRTUALENV=ONLY \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -Wno-dev
