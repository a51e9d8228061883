"""rclpy context boilerplate shared by in-process rclpy users.

- ``context_or_default``: the context an in-process helper (benchmarks, soak harness) creates its node in: the
  caller's own context when given (tests: the ``ros_context`` fixture), else the global default context,
  initialised on first use (CLI).
- ``own_context``: a fresh ``rclpy.Context`` initialised for a ``with`` block and shut down after it (the tests'
  ``ros_context`` fixture).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import rclpy


def context_or_default(context=None):
    """``context`` when given, else rclpy's global default context (initialised here when it is not yet)."""
    if context is not None:
        return context
    if not rclpy.ok():
        rclpy.init()
    return rclpy.get_default_context()


@contextlib.contextmanager
def own_context(args: Optional[Sequence[str]] = None) -> Iterator["rclpy.Context"]:
    """A fresh context, initialised for the block and shut down after it; never touches the global one."""
    ctx = rclpy.Context()
    rclpy.init(args=args, context=ctx)
    try:
        yield ctx
    finally:
        if ctx.ok():
            rclpy.shutdown(context=ctx)
