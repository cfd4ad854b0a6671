#!/usr/bin/env bash
# The main demo, on the shipped models: the `stack` ROS graph (planner_node, executive,
# policy_controller, sim_node; separate processes over rclpy / Fast DDS on loopback). The LLM
# planner (SmolLM2-135M + LoRA, SSD decoding) turns the command into a plan, D-MPC (diffusion
# proposer + dynamics ensemble) pushes the block in MuJoCo, and the run writes a video.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST HF_HUB_OFFLINE=1
mkdir -p outputs
.venv/bin/forethought run stack --command "push the green block to the top right" \
  --n-blocks 3 --seed 0 --until-success --timeout 600 --video outputs/demo.mp4 "$@"
echo "video: outputs/demo.mp4"
