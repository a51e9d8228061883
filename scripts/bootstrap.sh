#!/usr/bin/env bash
# One-command development/CI environment for trace_anything_ros (called by `make bootstrap`).
#
#   1. Debian packages (cmake, g++, EGL/Mesa for MuJoCo offscreen rendering); opencv-doc's sample data
#      (vtest.avi, ...) is extracted into build/opencv-doc without installing the 270 MB package.
#   2. .venv (Python 3.11) with the pinned wheels of requirements/{ros,core,dev}.txt (+ constraints.txt).
#   3. Fix-up of the ROS wheels' CMake exports (wheel-build include paths under /opt/python/cp311-cp311).
#   4. The interfaces (msg/, srv/) built with CMake into build/interfaces/install (only the generated code:
#      -DTAR_INSTALL_PYTHON_PACKAGE=OFF; the venv imports our Python package from this checkout).
#   5. A .pth in the venv: checkout first, generated site-packages second, and LD_LIBRARY_PATH for the
#      generated typesupport libraries; `pip install -e . --no-deps` for the `trace-anything-ros` command.
#   6. The ROS 2 tools that have no wheels (launch, launch_ros, launch_testing, ros2cli + verbs,
#      rosidl_runtime_py, composition_interfaces) from ../shared/vendor/ros2-jazzy-python-tools via its install.sh,
#      when that directory exists (CI and the team's machines; a robot has them from its ROS 2 install); skipped
#      with the reason logged otherwise. TRACE_ANYTHING_SHARED overrides ../shared; BOOTSTRAP_SKIP_ROS_TOOLS=1 skips.
#   7. The ament linters (ament_lint_auto in CMakeLists.txt; flake8, pep257, copyright, xmllint, lint_cmake) via
#      scripts/install_ament_lint.sh: requirements/lint.txt from PyPI, the rest from the same vendor directory's
#      ament_lint tarball; skipped with the reason logged when it is absent. BOOTSTRAP_SKIP_LINT=1 skips.
#      build/ and out/ get an AMENT_IGNORE marker (generated, not sources: the linters' crawlers skip them).
#   8. A smoke check: our modules and the generated messages import from the venv.
#
# Idempotent. Each layer has a stamp (hash of its inputs) under build/bootstrap/; a second run with nothing
# changed only re-checks and finishes in seconds. Environment: PYTHON (default python3.11), BOOTSTRAP_FORCE=1
# rebuilds everything, BOOTSTRAP_SKIP_APT=1 skips the Debian step, JOBS (default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3.11}"
JOBS="${JOBS:-2}"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
STAMPS="$ROOT/build/bootstrap"
IFACE_BUILD="$ROOT/build/interfaces/build"
IFACE_INSTALL="$ROOT/build/interfaces/install"
IFACE_SRC="$ROOT/build/interfaces/src"
OPENCV_DOC="$ROOT/build/opencv-doc"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

t0=$SECONDS
log() { printf '[bootstrap %3ds] %s\n' "$((SECONDS - t0))" "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$STAMPS"
[[ "${BOOTSTRAP_FORCE:-0}" == 1 ]] && rm -f "$STAMPS"/*.stamp

# hash_of <files/dirs...>: content hash of the inputs of a layer (names + contents, sorted).
hash_of() {
  find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 2>/dev/null | LC_ALL=C sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
stamp_ok() { [[ -f "$STAMPS/$1.stamp" && "$(cat "$STAMPS/$1.stamp")" == "$2" ]]; }
stamp_set() { printf '%s' "$2" >"$STAMPS/$1.stamp"; }

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else die "need root (or passwordless sudo) for: $*"; fi
}

# ---------------------------------------------------------------------------------------------- 1. Debian
# libsdformat-dev: the SDFormat parser Gazebo uses (Debian 12: SDFormat 12; Gazebo Harmonic: 14), for
# test/test_sdformat.py, which loads worlds/*.sdf with it.
# libxml2-utils: xmllint, which ament_xmllint runs (package.xml against the REP-149 schema).
APT_PKGS=(ca-certificates cmake make g++ git libegl1 libegl-mesa0 libgl1-mesa-dri libsdformat-dev libxml2-utils)
if ! command -v "$PYTHON" >/dev/null; then
  APT_PKGS+=(python3.11 python3.11-venv python3.11-dev)
fi
if [[ "${BOOTSTRAP_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || die "$PYTHON is not Python 3.11 (the ROS Jazzy wheels are cp311)"
# Python.h for the generated C extension; venv creation needs ensurepip (python3.11-venv on Debian's Python).
PY_INCLUDE="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
if [[ ! -f "$PY_INCLUDE/Python.h" ]] || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  [[ "${BOOTSTRAP_SKIP_APT:-0}" == 1 ]] && die "$PYTHON lacks Python.h or ensurepip"
  log "apt-get install python3.11-dev python3.11-venv"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends python3.11-dev python3.11-venv >/dev/null
fi

# Real test video and images without network: opencv-doc's examples/data, extracted (not installed).
OPENCV_DATA_SYS=/usr/share/doc/opencv-doc/examples/data
OPENCV_DATA="$OPENCV_DOC/usr/share/doc/opencv-doc/examples/data"
if [[ ! -f "$OPENCV_DATA_SYS/vtest.avi" && ! -f "$OPENCV_DATA/vtest.avi" && "${BOOTSTRAP_SKIP_APT:-0}" != 1 ]]; then
  log "fetching opencv-doc sample data (apt-get download + dpkg -x, ~96 MB)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && { apt-get download -qq opencv-doc 2>/dev/null \
      || { as_root apt-get update -qq && apt-get download -qq opencv-doc; }; }) \
    || die "apt-get download opencv-doc failed"
  rm -rf "$OPENCV_DOC.tmp" && mkdir -p "$OPENCV_DOC.tmp"
  dpkg -x "$tmp"/opencv-doc_*.deb "$OPENCV_DOC.tmp"
  rm -rf "$tmp" "$OPENCV_DOC"
  # keep only the sample data (the HTML docs are ~270 MB)
  mkdir -p "$OPENCV_DOC/usr/share/doc/opencv-doc/examples"
  mv "$OPENCV_DOC.tmp/usr/share/doc/opencv-doc/examples/data" "$OPENCV_DOC/usr/share/doc/opencv-doc/examples/"
  rm -rf "$OPENCV_DOC.tmp"
  find "$OPENCV_DATA" -name '*.gz' -exec gunzip -f {} + 2>/dev/null || true
  [[ -f "$OPENCV_DATA/vtest.avi" ]] || die "vtest.avi not found in opencv-doc"
fi

# --------------------------------------------------------------------------------------------- 2. venv
REQ_HASH="$(hash_of requirements/ros.txt requirements/core.txt requirements/dev.txt requirements/constraints.txt)"
REQ_HASH="$REQ_HASH-$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
if [[ ! -x "$VPY" ]]; then
  log "creating .venv with $PYTHON"
  "$PYTHON" -m venv "$VENV"
  rm -f "$STAMPS"/*.stamp
fi
if ! stamp_ok pip "$REQ_HASH"; then
  log "pip install -r requirements/{ros,core,dev}.txt"
  # torch==2.13.0 is the CPU build (a local wheel on these machines); never let pip pick a CUDA build.
  # (the grep drops pip's noise about this machine's pip.conf pointing at absent local index folders)
  "$VPY" -m pip install -q -r requirements/ros.txt -r requirements/core.txt -r requirements/dev.txt 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  "$VPY" - <<'EOF'
import torch
assert not torch.version.cuda, f"a CUDA torch was installed ({torch.__version__}); expected the CPU build"
EOF
  stamp_set pip "$REQ_HASH"
  rm -f "$STAMPS/interfaces.stamp"
fi
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# ------------------------------------------------------------------------ 3. CMake exports of the wheels
# The ROS wheels were built in a manylinux image; 12 *Export.cmake files under share/ name its Python include
# and numpy include directories as INTERFACE_INCLUDE_DIRECTORIES of imported targets. CMake's generate step
# (and colcon) fails on the non-existent paths: point them at this interpreter's. Idempotent.
"$VPY" - "$VENV" <<'EOF'
import pathlib, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1])
repl = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}
n = 0
for f in (venv / "share").glob("**/*Export.cmake"):
    text = f.read_text()
    new = text
    for old, good in repl.items():
        new = new.replace(old, good)
    if new != text:
        f.write_text(new)
        n += 1
left = [str(f) for f in (venv / "share").glob("**/*.cmake") if "/opt/python/cp311" in f.read_text()]
if n:
    print(f"[bootstrap] rewrote wheel-build include paths in {n} *Export.cmake files")
if left:
    sys.exit(f"wheel-build paths left in: {left}")
EOF

# ------------------------------------------------------------------------------------ 4. interfaces
IFACE_HASH="$(hash_of package.xml CMakeLists.txt msg srv scripts/bootstrap.sh)-$REQ_HASH"
if ! stamp_ok interfaces "$IFACE_HASH" || [[ ! -d "$IFACE_INSTALL" ]]; then
  log "building the interfaces (msg/, srv/) into build/interfaces/install"
  # A fresh build dir, but the install dir is kept until the new install is in place (other shells may be using
  # it); files the new build no longer installs are removed afterwards (install_manifest.txt).
  rm -rf "$IFACE_BUILD"
  # CMake refuses exported include directories inside the source tree, and .venv (numpy's include dir, which
  # the generated Python target exports) lies inside this checkout: configure through a symlink to the checkout
  # so the source dir is not a prefix of .venv (a lab's workspace never has the venv inside the package).
  mkdir -p "$(dirname "$IFACE_SRC")"
  ln -sfn "$ROOT" "$IFACE_SRC"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  # _ROS_WHEELS_BOOTSTRAP_COMPLETE unset: the venv's Python (rosidl generators) sets its own LD_LIBRARY_PATH.
  env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    cmake -S "$IFACE_SRC" -B "$IFACE_BUILD" -Wno-dev \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$IFACE_INSTALL" \
      -DCMAKE_PREFIX_PATH="$VENV" \
      -DPython3_EXECUTABLE="$VPY" \
      -DPython3_FIND_VIRTUALENV=ONLY \
      -DTAR_INSTALL_PYTHON_PACKAGE=OFF \
      -DBUILD_TESTING=OFF \
      -DCMAKE_INSTALL_RPATH="$IFACE_INSTALL/lib;$VENV/lib" \
      -DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON \
      >"$STAMPS/cmake-configure.log" 2>&1 \
    || { tail -40 "$STAMPS/cmake-configure.log" >&2; die "cmake configure failed (log: $STAMPS/cmake-configure.log)"; }
  env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    cmake --build "$IFACE_BUILD" --target install -- -j"$JOBS" >"$STAMPS/cmake-build.log" 2>&1 \
    || { grep -E -B2 -A8 'error|Error' "$STAMPS/cmake-build.log" | tail -60 >&2; die "interface build failed (log: $STAMPS/cmake-build.log)"; }
  "$VPY" - "$IFACE_BUILD/install_manifest.txt" "$IFACE_INSTALL" <<'EOF2'
import os, sys
keep = {os.path.realpath(p) for p in open(sys.argv[1]).read().split()}
for d, _, files in os.walk(sys.argv[2]):
    for f in files:
        p = os.path.join(d, f)
        if os.path.realpath(p) not in keep and "__pycache__" not in p:
            os.remove(p)
EOF2
  stamp_set interfaces "$IFACE_HASH"
fi
IFACE_SITE="$IFACE_INSTALL/$(cd "$IFACE_INSTALL" && ls -d lib/python3*/site-packages | head -1)"
[[ -d "$IFACE_SITE/trace_anything_ros/msg" ]] || die "generated Python messages missing under $IFACE_SITE"

# ------------------------------------------------------------------------------------- 5. venv wiring
# Sorted before ros_wheels_bootstrapper.pth (which re-executes Python with LD_LIBRARY_PATH set), so the
# re-executed interpreter and every child process inherit the generated libraries' directory as well:
# rosidl_typesupport_c finds lib<pkg>__rosidl_typesupport_*.so by searching LD_LIBRARY_PATH. It is appended,
# so a sourced colcon install (install/setup.sh prepends its lib/) still wins over the dev build.
PTH="$SITE/_trace_anything_ros.pth"
cat >"$PTH.tmp" <<EOF
$ROOT
$IFACE_SITE
import os; _l = os.environ.get('LD_LIBRARY_PATH', ''); _d = '$IFACE_INSTALL/lib'; os.environ['LD_LIBRARY_PATH'] = _l if _d in _l.split(os.pathsep) else os.pathsep.join(p for p in (_l, _d) if p)
EOF
mv "$PTH.tmp" "$PTH"

if [[ ! -x "$VENV/bin/trace-anything-ros" ]] || ! stamp_ok editable "$(hash_of setup.py pyproject.toml)-$REQ_HASH"; then
  log "pip install -e . --no-deps"
  "$VPY" -m pip install -q --no-deps -e "$ROOT" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  stamp_set editable "$(hash_of setup.py pyproject.toml)-$REQ_HASH"
fi

# ------------------------------------------------------------------------------------ 6. ROS 2 tools
SHARED="${TRACE_ANYTHING_SHARED:-$ROOT/../shared}"
ROS_TOOLS="$SHARED/vendor/ros2-jazzy-python-tools"
if [[ "${BOOTSTRAP_SKIP_ROS_TOOLS:-0}" == 1 ]]; then
  log "ROS 2 tools (launch, launch_testing, ros2cli): skipped (BOOTSTRAP_SKIP_ROS_TOOLS=1)"
elif [[ -x "$ROS_TOOLS/install.sh" ]]; then
  # idempotent (<1 s when done); needs pytest < 9 (requirements/dev.txt pins it)
  if ! "$ROS_TOOLS/install.sh" "$VENV" "$ROOT/build/ros2-tools" 2>&1 \
      | { grep -v 'is ignored: it is neither a file nor a directory' || true; } | sed 's/^/[bootstrap] /'; then
    die "installing the ROS 2 tools from $ROS_TOOLS failed"
  fi
else
  log "ROS 2 tools (launch, launch_testing, ros2cli): skipped, $ROS_TOOLS not found (launch tests will skip)"
fi

# ------------------------------------------------------------------------------------ 7. ament linters
for d in build out; do mkdir -p "$ROOT/$d" && touch "$ROOT/$d/AMENT_IGNORE"; done
if [[ "${BOOTSTRAP_SKIP_LINT:-0}" == 1 ]]; then
  log "ament linters: skipped (BOOTSTRAP_SKIP_LINT=1)"
elif [[ -f "$ROS_TOOLS/ament_lint-0.17.1.tar.gz" ]]; then
  # idempotent (<1 s when done)
  if ! "$ROOT/scripts/install_ament_lint.sh" "$VENV" "$ROS_TOOLS" "$ROOT/build/ament-lint" 2>&1 | sed 's/^/[bootstrap] /'; then
    die "installing the ament linters from $ROS_TOOLS failed"
  fi
else
  log "ament linters: skipped, $ROS_TOOLS/ament_lint-0.17.1.tar.gz not found (test_ament_lint.py will skip)"
fi

# ------------------------------------------------------------------------------------------- 8. check
"$VPY" - "$ROOT" <<'EOF'
import os, sys
import trace_anything_ros
root = os.path.realpath(sys.argv[1])
paths = [os.path.realpath(p) for p in trace_anything_ros.__path__]
assert os.path.realpath(os.path.dirname(trace_anything_ros.__file__)) == os.path.join(root, "trace_anything_ros"), \
    f"trace_anything_ros imports from {trace_anything_ros.__file__}, not from this checkout"
import trace_anything_ros.field.basis  # noqa: F401  (ours)
from trace_anything_ros.msg import TrajectoryField  # noqa: F401  (generated)
from trace_anything_ros.srv import SetObjectGoal  # noqa: F401
import rclpy  # noqa: F401
EOF
log "ok (.venv ready; interfaces in build/interfaces/install)"
