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

"""Camera input QoS that follows the publishers (``qos.reliability: auto``, ros/qos.py), over DDS.

The perception node runs in its own process (analytic estimator); the camera publishers are created and destroyed
here, and what the node subscribes with is read from the DDS graph (the node's own subscription endpoint), not
from the node. The planner node's camera subscriptions follow the same rule: test_planner_node.py.
"""
import numpy as np
import pytest

from ros_helpers import RosHarness, node_under_test
from test_node_perception import SRC_H, SRC_W, start_node

pytestmark = pytest.mark.ros

NODE = "/trajectory_field_node"


def test_auto_rule_and_profiles():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    from trace_anything_ros.ros.qos import MODES, follows_reliable, input_qos

    assert MODES[0] == "auto"
    assert follows_reliable((2, 0)) is True
    assert follows_reliable((2, 1)) is False and follows_reliable((0, 1)) is False
    assert follows_reliable((0, 0)) is None  # no publisher: keep what the subscription has
    for mode, reliable, want in (("auto", True, ReliabilityPolicy.RELIABLE), ("auto", False,
                                 ReliabilityPolicy.BEST_EFFORT), ("sensor_data", True, ReliabilityPolicy.BEST_EFFORT),
                                 ("reliable", False, ReliabilityPolicy.RELIABLE),
                                 ("best_effort", True, ReliabilityPolicy.BEST_EFFORT)):
        q = input_qos(mode, depth=7, reliable=reliable)
        assert (q.reliability, q.durability, q.depth) == (want, DurabilityPolicy.VOLATILE, 7), mode
    assert input_qos("auto", history="keep_all").history == HistoryPolicy.KEEP_ALL
    with pytest.raises(ValueError, match="qos.reliability"):
        input_qos("reliabel")


class Harness(RosHarness):
    WAIT_TIMEOUT = 20.0

    def __init__(self, context):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from trace_anything_ros.msg import TrajectoryField

        super().__init__("qos_follow_test", context, NODE)
        self.fields, self.diag = [], []
        rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(TrajectoryField, f"{NODE}/trajectory_field", self.fields.append, rel)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, rel)

    def _on_diag(self, m):
        self.diag += [{kv.key: kv.value for kv in s.values} for s in m.status if s.name.startswith(NODE[1:])]

    def node_sub_reliability(self, topic):
        """The reliability of the perception node's subscription to ``topic``, as the DDS graph shows it."""
        infos = [i for i in self.node.get_subscriptions_info_by_topic(topic) if i.node_name == NODE[1:]]
        return infos[0].qos_profile.reliability.name.lower() if len(infos) == 1 else f"{len(infos)} subscriptions"

    def follows(self, want, timeout=10.0):
        """Both the graph and the node's /diagnostics report ``want`` for the image subscription."""
        return self.wait(lambda: self.node_sub_reliability("/image") == want and self.diag
                         and self.diag[-1].get("input_qos") == want, timeout)

    def publish_frames(self, pub_img, pub_info, start_ns, count):
        from sensor_msgs.msg import CameraInfo

        from trace_anything_ros.ros import conversions as conv
        for i in range(count):
            s = start_ns + i * 50_000_000
            ci = CameraInfo(width=SRC_W, height=SRC_H)
            ci.header.stamp, ci.header.frame_id = conv.ns_to_time(s), "cam"
            ci.k = [100.0, 0.0, 79.5, 0.0, 100.0, 59.5, 0.0, 0.0, 1.0]
            pub_info.publish(ci)
            a = np.full((SRC_H, SRC_W, 3), 40, np.uint8)
            a[30:70, 10 + 4 * i:40 + 4 * i] = (255, 0, 0)
            m = conv.array_to_image(a, "rgb8")
            m.header.stamp, m.header.frame_id = conv.ns_to_time(s), "cam"
            pub_img.publish(m)
            self.spin(0.05)


@pytest.fixture(scope="module")
def env(ros_context):
    with node_under_test(start_node("window.length:=4"), Harness(ros_context)) as hp:
        yield hp


def test_default_follows_the_camera_publishers(env):
    """Default ``auto``: best effort while no camera is there, reliable once every image publisher offers it (a
    driver started after the node), back to best effort when a best-effort publisher joins, reliable again when it
    leaves; images from the reliable camera are processed after the switch."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    h, _ = env
    assert h.lc.change_state("configure") and h.lc.change_state("activate")
    assert h.follows("best_effort"), (h.node_sub_reliability("/image"), h.diag[-1:])
    rel = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pub_img = h.node.create_publisher(Image, "image", rel)
    pub_info = h.node.create_publisher(CameraInfo, "camera_info", rel)
    assert h.follows("reliable"), (h.node_sub_reliability("/image"), h.diag[-1:])
    assert h.wait(lambda: h.node_sub_reliability("/camera_info") == "reliable")
    assert h.wait(lambda: pub_img.get_subscription_count() == 1 and pub_info.get_subscription_count() == 1)
    h.publish_frames(pub_img, pub_info, 10_000_000_000, 8)
    assert h.wait(lambda: h.fields), h.diag[-1:]
    # a second, best-effort camera publisher: a reliable subscription could not hear it
    pub_be = h.node.create_publisher(Image, "image", qos_profile_sensor_data)
    assert h.follows("best_effort"), (h.node_sub_reliability("/image"), h.diag[-1:])
    assert h.diag[-1].get("incompatible_qos_events", "0") == "0", h.diag[-1]
    h.node.destroy_publisher(pub_be)
    assert h.follows("reliable"), (h.node_sub_reliability("/image"), h.diag[-1:])
    # a fixed mode is never changed: sensor_data stays best effort with only reliable publishers
    assert h.lc.change_state("deactivate") and h.lc.change_state("cleanup")
    assert all(r.successful for r in h.set_params(qos__reliability="sensor_data"))
    assert h.lc.change_state("configure") and h.lc.change_state("activate")
    assert h.follows("best_effort")
    h.spin(2.5)  # more than the refresh period
    assert h.node_sub_reliability("/image") == "best_effort"
    rs = h.set_params(qos__reliability="auto")  # read on configure: refused while active
    assert not rs[0].successful and "read on configure" in rs[0].reason, rs[0].reason
    h.node.destroy_publisher(pub_img)
    h.node.destroy_publisher(pub_info)
