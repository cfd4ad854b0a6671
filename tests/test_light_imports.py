"""Pure modules stay light: importing them loads no simulator, gymnasium or parquet reader.

Each check runs in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("mujoco", "gymnasium", "pyarrow")


def loaded_after(module: str) -> set[str]:
    """Which of ``HEAVY`` are in ``sys.modules`` after ``import module`` in a new interpreter."""
    code = f"import json, sys, {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module", ["forethought.sim", "forethought.sim.scene", "forethought.sim.plan_progress",
                                    "forethought.ros_ws.graph"])
def test_pure_module_imports_nothing_heavy(module: str) -> None:
    assert loaded_after(module) == set()


def test_env_registration_does_load_gymnasium() -> None:
    """The positive control: the probe sees a heavy import when there is one."""
    assert {"gymnasium", "mujoco"} <= loaded_after("forethought.sim.envs")
