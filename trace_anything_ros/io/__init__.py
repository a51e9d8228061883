"""ROS-free readers and writers: video files (OpenCV), MCAP / rosbag2 (``mcap`` + ``mcap_ros2``), MCAP output.

video:   find_vtest (the real test video), read_video (RGB frames + stamps)
msgdefs: ros2msg schema text of a message type from the .msg files
bag:     open_source (video | MCAP | rosbag2 dir -> image frames), iter_messages (decoded messages of a recording)
mcap_out: McapOut (channels with ros2msg/CDR or JSON encoding)
"""
