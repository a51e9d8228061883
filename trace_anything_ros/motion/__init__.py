"""Dynamic masks, moving-object grouping, per-object summaries and forecasts (ROS-free).

The node calls :func:`analyze` once per window; see :class:`MotionParams` for the parameters.
"""
from .analyze import MotionParams, MotionResult, analyze
from .objects import DynamicObject, ObjectTracker

__all__ = ["analyze", "MotionParams", "MotionResult", "DynamicObject", "ObjectTracker"]
