"""The analytic estimator with injected faults (for test_reliability_faults.py).

``TAR_FAULTY_FAIL_AT=k``: the k-th predict call (1-based, warm-up included) raises RuntimeError; the others work.
``TAR_ANALYTIC_DELAY`` as in analytic_estimator.
"""
from __future__ import annotations

import os

import analytic_estimator


class FaultyEstimator(analytic_estimator.AnalyticEstimator):
    def __init__(self, fail_at: int, **kw):
        super().__init__(**kw)
        self.fail_at = int(fail_at)
        self.n = 0

    def predict(self, frames, frame_keys=None, depth=None):
        self.n += 1
        if self.n == self.fail_at:
            raise RuntimeError(f"injected model fault on window {self.n}")
        return super().predict(frames, frame_keys, depth)


def create(params=None):
    base = analytic_estimator.create(params)
    return FaultyEstimator(int(os.environ.get("TAR_FAULTY_FAIL_AT", "0")), input_size=base.input_size,
                           num_ctrl=base.num_ctrl, delay=base.delay)
