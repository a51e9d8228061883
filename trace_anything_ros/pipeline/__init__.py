"""ROS-free perception pipeline shared by the ROS node and the offline ``process`` command.

frames:     Frame, FrameIngest (stamp/size validation + bounded ring + newest-window mailbox), DropCounter
window:     WindowSpec, select_window
perception: PerceptionPipeline, PipelineParams, Products, WindowWorker, load_estimator
fieldops:   the seam to field/ and motion/
"""
from .frames import DropCounter, Frame, FrameIngest, preprocess_depth, preprocess_rgb, scale_intrinsics  # noqa: F401
from .perception import (PerceptionPipeline, PipelineParams, Products, Tracks, ObjectSummary,  # noqa: F401
                         WindowWorker, load_estimator)
from .window import WindowSpec, select_window  # noqa: F401
