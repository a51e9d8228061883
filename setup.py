"""pip install -e . for the ROS-free core (model, field math, motion, planning, sim, eval, CLI).

The same directory is also an ament_cmake ROS package (package.xml + CMakeLists.txt): `colcon build` uses CMake,
never this file. The ROS interfaces (trace_anything_ros.msg/srv) come from that build, not from pip.
"""
from setuptools import find_packages, setup

setup(
    name="trace_anything_ros",
    version="0.1.0",
    description="Trace Anything trajectory fields for ROS 2: dense 4D trajectories, forecasts, dynamic masks, "
    "goal-conditioned manipulation planning",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["trace_anything_ros", "trace_anything_ros.*"]),
    include_package_data=True,
    package_data={"trace_anything_ros": ["**/*.yaml", "**/*.json", "**/*.xml", "model/weights/*"]},
    # Minimal and unpinned: a robot keeps its own (CUDA / Jetson) torch; the pinned set lives in requirements/.
    install_requires=[
        "numpy>=1.24",
        "torch>=2.1",
        "safetensors>=0.4",
        "PyYAML>=6",
        "opencv-python-headless>=4.8",
        "scipy>=1.10",
    ],
    extras_require={
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "sim": ["mujoco>=3.1"],
        "bag": ["mcap>=1.1", "mcap-ros2-support>=0.5"],
        "test": ["pytest>=8", "pytest-timeout>=2.2", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["trace-anything-ros = trace_anything_ros.cli:main"]},
)
