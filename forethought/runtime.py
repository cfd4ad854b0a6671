"""Process-wide defaults every forethought entry point applies before heavy imports."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import signal
import sys
import warnings
from pathlib import Path

LOCAL_DEFAULTS: dict[str, str] = {
    # Fast DDS discovery stays on loopback unless the user asks otherwise.
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    # No model hub at run time: every artefact resolves from a local directory.
    "HF_HUB_OFFLINE": "1",
    # Headless MuJoCo rendering.
    "MUJOCO_GL": "egl",
}


def apply_defaults(env: dict[str, str] | None = None) -> dict[str, str]:
    """Set each of ``LOCAL_DEFAULTS`` in ``env`` (default ``os.environ``) unless already set."""
    env = os.environ if env is None else env
    for key, value in LOCAL_DEFAULTS.items():
        env.setdefault(key, value)
    return env


def prepare_node_process(module_name: str) -> None:
    """The first call of every ROS node module, before rclpy (or torch) is imported.

    Applies ``LOCAL_DEFAULTS`` (rcl reads the discovery range when rclpy starts). When the module
    runs as a process of its own (``module_name == "__main__"``), SIGINT and SIGTERM exit quietly
    with code 0 during the imports, until ``forethought.ros_ws.node_common.run_node`` installs
    its own handlers; an imported module (tests, ``ros2 run`` scripts) leaves the handlers alone.
    """
    apply_defaults()
    if module_name == "__main__":
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: sys.exit(0))


def check_onnxruntime_install() -> str | None:
    """Warn when both ``onnxruntime`` and ``onnxruntime-gpu`` are installed; return the one found.

    Both distributions write the same ``onnxruntime/`` package, so whichever was installed last
    silently wins. Install exactly one: ``.[cpu]`` or ``.[gpu]``.
    """
    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            found.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(found) > 1:
        warnings.warn(
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other. "
            "Keep exactly one: pip uninstall -y onnxruntime onnxruntime-gpu && "
            "pip install 'forethought[cpu]' (or '[gpu]' on a CUDA host)",
            RuntimeWarning,
            stacklevel=2,
        )
    return found[-1] if found else None


def pretrained_dir() -> Path:
    """``forethought/models/pretrained`` (the repository's ``models/pretrained``), without importing the models package."""
    spec = importlib.util.find_spec("forethought.models")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the forethought.models package is missing: reinstall forethought")
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained"
