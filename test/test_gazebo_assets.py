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

"""Static checks of the Gazebo assets (gz sim and ros_gz are not installable here)."""
import math
import pathlib
import py_compile
import xml.etree.ElementTree as ET

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_world_sdf_has_what_gz_sim_expects():
    root = ET.parse(REPO / "worlds" / "tabletop.sdf").getroot()
    assert root.tag == "sdf" and root.get("version") == "1.9"
    world = root.find("world")
    assert world is not None and world.get("name")
    plugins = {p.get("name") for p in world.findall("plugin")}
    assert {"gz::sim::systems::Physics", "gz::sim::systems::SceneBroadcaster",
            "gz::sim::systems::Sensors"} <= plugins
    for p in world.findall("plugin"):
        assert p.get("filename", "").startswith("gz-sim-")
    models = {m.get("name"): m for m in world.findall("model")}
    assert {"table", "turntable", "rgbd_camera"} <= set(models)
    sensors = world.findall(".//sensor")
    cams = [s for s in sensors if s.get("type") in ("rgbd_camera", "depth_camera")]
    assert cams, "an RGB-D / depth camera sensor"
    cam = cams[0]
    assert cam.findtext("topic") == "camera"
    c = cam.find("camera")
    w, h = int(c.findtext("image/width")), int(c.findtext("image/height"))
    hfov = float(c.findtext("horizontal_fov"))
    assert (w, h) == (320, 240) and 0.3 < hfov < 2.5
    vfov = 2 * math.degrees(math.atan(math.tan(hfov / 2) * h / w))
    assert abs(vfov - 55.0) < 0.5                                   # same intrinsics as the MuJoCo sim camera
    assert float(c.findtext("clip/near")) > 0 and c.find("depth_camera") is not None
    assert cam.findtext("gz_frame_id") == "sim_camera_optical_frame"
    # something moves: a joint driven by a controller plugin
    tt = models["turntable"]
    assert tt.find("joint[@type='revolute']") is not None
    jc = [p for p in tt.findall("plugin") if p.get("name") == "gz::sim::systems::JointController"]
    assert jc and jc[0].findtext("joint_name") == "spin" and float(jc[0].findtext("initial_velocity")) != 0


def test_bridge_yaml_schema_and_topics_match_the_perception_node():
    entries = yaml.safe_load((REPO / "config" / "gz_bridge.yaml").read_text())
    keys = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
    for e in entries:
        assert set(e) == keys, e
        assert e["direction"] in ("GZ_TO_ROS", "ROS_TO_GZ", "BIDIRECTIONAL")
        assert e["gz_type_name"].startswith("gz.msgs.")
    by_ros = {e["ros_topic_name"]: e for e in entries}
    # the perception node subscribes to image / depth / camera_info, remapped by the graph (rclpy-free module)
    from trace_anything_ros.ros.graph import CAMERA_REMAPS

    assert by_ros[CAMERA_REMAPS["image"]]["ros_type_name"] == "sensor_msgs/msg/Image"
    assert by_ros[CAMERA_REMAPS["depth"]]["ros_type_name"] == "sensor_msgs/msg/Image"
    assert by_ros[CAMERA_REMAPS["camera_info"]]["ros_type_name"] == "sensor_msgs/msg/CameraInfo"
    assert by_ros["/clock"]["ros_type_name"] == "rosgraph_msgs/msg/Clock"
    # gz side: the rgbd_camera sensor's topics for <topic>camera</topic>
    assert by_ros[CAMERA_REMAPS["image"]]["gz_topic_name"] == "/camera/image"
    assert by_ros[CAMERA_REMAPS["depth"]]["gz_topic_name"] == "/camera/depth_image"
    assert by_ros[CAMERA_REMAPS["camera_info"]]["gz_topic_name"] == "/camera/camera_info"


def test_launch_file_compiles():
    py_compile.compile(str(REPO / "launch" / "sim_gazebo.launch.py"), doraise=True)
    text = (REPO / "launch" / "sim_gazebo.launch.py").read_text()
    assert "parameter_bridge" in text and "gz_bridge.yaml" in text and "tabletop.sdf" in text
    assert "def generate_launch_description" in text
