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

"""ROS-free perception pipeline shared by the ROS node and the offline ``process`` command.

frames:     Frame, FrameIngest (stamp/size validation + bounded ring + newest-window mailbox), DropCounter;
            preprocess_rgb / preprocess_depth / frame_intrinsics delegate to model.preprocess (one rule)
window:     WindowSpec, select_window
perception: PerceptionPipeline, PipelineParams, Products, WindowWorker, load_estimator
fieldops:   the seam to field/ and motion/
poses:      PoseBuffer (stamped camera poses of a moving camera, looked up at a window's stamps)
sync:       pick_camera_info, match_depth (camera_info for an image, depth <-> image pairing by stamp)
"""
from .frames import (DropCounter, Frame, FrameIngest, frame_intrinsics, preprocess_depth, preprocess_rgb,  # noqa: F401
                     scale_intrinsics)
from .perception import (PerceptionPipeline, PipelineParams, Products, Tracks, ObjectSummary,  # noqa: F401
                         WindowWorker, load_estimator)
from .poses import PoseBuffer, pose_matrix  # noqa: F401
from .window import WindowSpec, select_window  # noqa: F401
