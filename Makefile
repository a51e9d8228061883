# trace_anything_ros: `make test` is the one command (CI runs it via .ci/run). Everything runs from .venv.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: bootstrap test test-fast lint demo colcon clean distclean help

help:
	@echo "make bootstrap   create .venv, pinned wheels, Debian packages, build the interfaces (idempotent)"
	@echo "make test        bootstrap if needed, then run every test (pytest test/)"
	@echo "make test-fast   the same without tests marked slow"
	@echo "make lint        the ament linters via colcon test (flake8, pep257, copyright, xmllint, lint_cmake)"
	@echo "make demo        trace-anything-ros demo"
	@echo "make colcon      colcon build of this package in build/colcon_ws (as a lab would)"

bootstrap:
	./scripts/bootstrap.sh

test: bootstrap
	$(PY) -m pytest -rs --timeout=900 --durations=15 $(PYTEST_ARGS) test

test-fast: bootstrap
	$(PY) -m pytest -rs --timeout=900 -m "not slow" $(PYTEST_ARGS) test

# The ament linters as a ROS reviewer runs them (colcon test, label `linter`); `make test` runs them too
# (test/test_ament_lint.py).
lint: bootstrap
	./scripts/colcon_lint.sh build/colcon_lint_ws

demo: bootstrap
	$(VENV)/bin/trace-anything-ros demo

colcon: bootstrap
	./scripts/colcon_build.sh build/colcon_ws

clean:
	rm -rf build/interfaces build/bootstrap build/colcon_ws build/colcon_lint_ws

distclean: clean
	rm -rf $(VENV) build
