"""ROS-free perception pipeline shared by the ROS node and the offline ``process`` command.

frames:     Frame, FrameIngest (stamp/size validation + bounded ring + newest-window mailbox), DropCounter;
            preprocess_rgb / preprocess_depth / frame_intrinsics delegate to model.preprocess (one rule)
window:     WindowSpec, select_window
perception: PerceptionPipeline, PipelineParams, Products, WindowWorker, load_estimator
fieldops:   the seam to field/ and motion/
poses:      PoseBuffer (stamped camera poses of a moving camera, looked up at a window's stamps)
"""
from .frames import (DropCounter, Frame, FrameIngest, frame_intrinsics, preprocess_depth, preprocess_rgb,  # noqa: F401
                     scale_intrinsics)
from .perception import (PerceptionPipeline, PipelineParams, Products, Tracks, ObjectSummary,  # noqa: F401
                         WindowWorker, load_estimator)
from .poses import PoseBuffer, pose_matrix  # noqa: F401
from .window import WindowSpec, select_window  # noqa: F401
