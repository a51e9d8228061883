"""The analytic stand-in estimator lives in the package (``trace_anything_ros.model.analytic``); this module keeps
the short factory string ``analytic_estimator:create`` (and ``import analytic_estimator``) working for tests that
run with test/ on the path."""
from trace_anything_ros.model.analytic import VELOCITY, Z, AnalyticEstimator, create, red_mask  # noqa: F401
