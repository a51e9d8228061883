"""MuJoCo simulation with ground truth (ROS-free; the ROS camera node is trace_anything_ros.ros.sim_camera_node).

  from trace_anything_ros.sim.scene import Scene, SceneConfig          # procedural tabletop scenes
  from trace_anything_ros.sim.ground_truth import render_window        # frames + GroundTruthWindow

    scene = Scene(SceneConfig.from_preset("moving_camera", seed=3, width=320, height=240))
    frames, gt = render_window(scene, num_frames=8, dt=0.1, start=1.0)
    gt.field            # TrajectoryField (metric, reference camera = frame 0, ROS optical convention)
    gt.dynamic_mask, gt.instance_ids, gt.visibility, gt.positions

Submodules are not imported here so that ``import trace_anything_ros.sim`` does not load MuJoCo.
"""
