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

"""Security: ROS isolation of every test subprocess, and the SROS2 status of the Fast DDS wheels (docs/SECURITY.md).

Finding (pinned by the SROS2 tests below): the PyPI Fast DDS 2.14 wheels are built without -DSECURITY=ON. With
ROS_SECURITY_ENABLE=true and a keystore enclave present, node creation fails with "This Fast DDS version doesn't
have the security libraries"; so SROS2 cannot be used with these wheels (it can on a ROS install built with
security). If the wheels ever ship security, test_fastdds_wheels_lack_security fails: then replace it with a
test that two nodes with valid enclaves talk and one without keys cannot (see docs/SECURITY.md).
"""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros

TEST_DIR = pathlib.Path(__file__).resolve().parent
REPO = TEST_DIR.parent
ISOLATION = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")
SCANNED = sorted(TEST_DIR.glob("*.py")) + sorted((REPO / "trace_anything_ros").rglob("*.py"))


def _helpers():
    import ros_helpers

    from trace_anything_ros.ros import soak
    return {"ros_helpers.node_env": ros_helpers.node_env, "ros.soak.node_env": soak.node_env}


def test_conftest_isolation_is_set():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 100 <= int(os.environ["ROS_DOMAIN_ID"]) <= 199  # private, not the default 0


@pytest.mark.parametrize("name", ["ros_helpers.node_env", "ros.soak.node_env"])
def test_node_env_helpers_pass_isolation_to_a_real_child(name):
    env = _helpers()[name]()
    for k in ISOLATION:
        assert env.get(k) == os.environ[k], (name, k)
    code = "import os; print(os.environ.get('ROS_DOMAIN_ID'), os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.split() == [os.environ[k] for k in ISOLATION], out


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "Popen", "run", "call", "check_call", "check_output") and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == "subprocess":
            yield node


def test_every_subprocess_launch_inherits_the_environment():
    """Static check of every subprocess launch in test/ and the package: no ``env=`` (inherits os.environ, which
    conftest set) or an env built from os.environ (``dict(os.environ)`` / ``os.environ.copy()`` / a node_env
    helper) in the same module, never a fresh dict that would drop ROS_DOMAIN_ID / discovery range."""
    bad, seen = [], 0
    for path in SCANNED:
        src = path.read_text()
        if "subprocess" not in src:
            continue
        tree = ast.parse(src)
        for call in _calls(tree):
            seen += 1
            env = next((k.value for k in call.keywords if k.arg == "env"), None)
            if env is None:
                continue
            seg = ast.get_source_segment(src, env) or ""
            ok = ("node_env" in seg or "os.environ" in seg or seg == "base_env()"
                  or (isinstance(env, ast.Name) and ("dict(os.environ)" in src or "os.environ.copy()" in src
                                                     or "os.environ.items()" in src or "node_env(" in src
                                                     or "ros_env(" in src or "base_env(" in src)))
            if isinstance(env, ast.Call) and "os.environ.items()" in src:
                ok = True  # a helper of this module that filters os.environ (e.g. drops PYTHONPATH)
            if isinstance(env, ast.Dict):
                ok = False
            if not ok:
                bad.append(f"{path.relative_to(REPO)}:{call.lineno} env={seg}")
    assert seen >= 8, seen  # the scan sees the launches (perception/planner/runner tests, runner, bench, soak)
    assert not bad, bad
    # the launch tests' helpers (test/launch_helpers.py: base_env, and ros_env = a shell sourcing install/setup.sh
    # started with base_env) derive from os.environ, so ROS_DOMAIN_ID and the discovery range reach ros2 launch
    helpers = (REPO / "test" / "launch_helpers.py").read_text()
    assert "os.environ.items()" in helpers and "env=base_env()" in helpers


def _secure_child(keystore, enclave, strategy="Enforce"):
    env = dict(os.environ, ROS_SECURITY_KEYSTORE=str(keystore), ROS_SECURITY_ENABLE="true",
               ROS_SECURITY_STRATEGY=strategy)
    code = ("import rclpy\nrclpy.init(args=['--ros-args', '--enclave', %r])\n"
            "n = rclpy.create_node('sros2_probe')\nprint('NODE_CREATED')\nn.destroy_node()\nrclpy.shutdown()\n"
            % enclave)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_fastdds_wheels_lack_security(tmp_path):
    """An enclave with the six files rmw_fastrtps looks for: node creation fails because the Fast DDS library in
    the wheels was built without the security plugins (the files are not even parsed)."""
    enc = tmp_path / "keystore" / "enclaves" / "trace_anything_ros" / "trajectory_field_node"
    enc.mkdir(parents=True)
    for f in ("identity_ca.cert.pem", "cert.pem", "key.pem", "permissions_ca.cert.pem", "governance.p7s",
              "permissions.p7s"):
        (enc / f).write_text("placeholder\n")
    r = _secure_child(tmp_path / "keystore", "/trace_anything_ros/trajectory_field_node")
    assert "NODE_CREATED" not in r.stdout, "Fast DDS accepted security settings: wheels now have security, " \
                                           "replace this test by a real two-enclave test (docs/SECURITY.md)"
    assert "doesn't have the security libraries" in r.stderr, r.stderr[-2000:]


def test_enforce_refuses_a_node_without_keys(tmp_path):
    """rcl's Enforce strategy: a node whose enclave has no keys does not start (this part works without the
    Fast DDS plugins, it is checked by rcl before the participant is created)."""
    (tmp_path / "keystore" / "enclaves").mkdir(parents=True)
    r = _secure_child(tmp_path / "keystore", "/no_such_enclave")
    assert "NODE_CREATED" not in r.stdout and "SECURITY ERROR" in r.stderr, r.stderr[-2000:]


def test_fastdds_library_has_no_security_plugins():
    """Independent of rmw: the shared library carries the 'security is disabled' branches and none of the builtin
    plugin names (DDS:Auth:PKI-DH, DDS:Access:Permissions, DDS:Crypto:AES-GCM-GMAC)."""
    import glob

    import rclpy
    venv_lib = pathlib.Path(rclpy.__file__).resolve().parents[3]
    libs = sorted(glob.glob(str(venv_lib / "libfastrtps.so.*"))) or sorted(glob.glob(str(venv_lib / "libfastdds.so*")))
    if not libs:
        pytest.skip(f"no libfastrtps/libfastdds under {venv_lib} (not the PyPI wheels layout)")
    data = pathlib.Path(libs[0]).read_bytes()
    assert b"but security is disabled" in data
    for name in (b"DDS:Auth:PKI-DH", b"DDS:Access:Permissions", b"DDS:Crypto:AES-GCM-GMAC"):
        assert name not in data, name
