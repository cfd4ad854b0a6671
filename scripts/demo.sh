#!/usr/bin/env bash
# The main demo: the ROS graph (sim_node + policy_controller, separate processes over rclpy /
# Fast DDS on loopback) pushes the red block to the left region in MuJoCo and writes a video.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST HF_HUB_OFFLINE=1
mkdir -p outputs
.venv/bin/forethought run sim \
  --task '{"skill": "push", "object": "red_block", "target": "left"}' \
  --n-blocks 3 --seed 0 --until-success --timeout 120 --video outputs/demo.mp4 "$@"
echo "video: outputs/demo.mp4"
