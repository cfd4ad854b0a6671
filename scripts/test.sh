#!/usr/bin/env bash
# Run the test suite in the project venv, with discovery on loopback, offline hub, headless GL.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST HF_HUB_OFFLINE=1
# -P: keep the working directory off sys.path, so the repository's `launch/` folder cannot shadow
# ROS 2's `launch` (a ROS pytest plugin such as launch_testing imports it before any conftest runs).
exec .venv/bin/python -P -m pytest "$@"
