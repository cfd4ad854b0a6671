#!/usr/bin/env bash
# Run the test suite in the project venv, with discovery on loopback, offline hub, headless GL.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=egl ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
