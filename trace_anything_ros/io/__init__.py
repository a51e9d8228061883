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

"""ROS-free readers and writers: video files (OpenCV), MCAP / rosbag2 (``mcap`` + ``mcap_ros2``), MCAP output.

video:   find_vtest (the real test video), read_video (RGB frames + stamps)
msgdefs: ros2msg schema text of a message type from the .msg files
bag:     open_source (video | MCAP | rosbag2 dir -> image frames), iter_messages (decoded messages of a recording)
mcap_out: McapOut (channels with ros2msg/CDR or JSON encoding)
"""
