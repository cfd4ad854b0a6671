"""The repository's top-level ``launch/`` folder never shadows ROS 2's ``launch`` package.

ROS 2's ``setup.bash`` puts its Python packages on PYTHONPATH; ``python -m pytest`` from the
repository root puts the root ahead of them. The folder is ``forethought.launch`` and nothing else.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPO_LAUNCH = (ROOT / "launch").resolve()
ROS_MARKER = "ROS_LAUNCH_STAND_IN"


def _resolves_into_repo(spec) -> bool:
    locations = [*(spec.submodule_search_locations or []), *([spec.origin] if spec.origin else [])]
    return any(REPO_LAUNCH == Path(p).resolve() or REPO_LAUNCH in Path(p).resolve().parents for p in locations)


def test_repo_launch_folder_is_not_top_level_launch() -> None:
    spec = importlib.util.find_spec("launch")
    assert spec is None or not _resolves_into_repo(spec), spec
    assert "launch" not in sys.modules or not _resolves_into_repo(sys.modules["launch"].__spec__)


def test_ros_launch_if_installed_is_the_one_imported() -> None:
    if importlib.util.find_spec("launch") is None:
        pytest.skip("ROS 2's launch is not installed")
    import launch

    assert hasattr(launch, "LaunchDescription"), launch.__file__
    assert not _resolves_into_repo(launch.__spec__), launch.__file__


def _ros_like_install(tmp_path: Path) -> dict[str, str]:
    """A PYTHONPATH entry holding a ``launch`` package, laid out as ROS 2's setup.bash provides it."""
    pkg = tmp_path / "ros" / "launch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"{ROS_MARKER} = True\nclass LaunchDescription: ...\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path / "ros")}


@pytest.mark.slow
def test_pytest_from_repo_root_imports_ros_launch(tmp_path: Path) -> None:
    # The house command (`python -m pytest`, no -P) from the repository root, ROS's launch on PYTHONPATH.
    env = _ros_like_install(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_import_paths.py::test_ros_launch_if_installed_is_the_one_imported"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert res.returncode == 0 and "1 passed" in res.stdout, res.stdout + res.stderr


def test_test_script_keeps_working_directory_off_sys_path(tmp_path: Path) -> None:
    # scripts/test.sh runs `python -P -m pytest`: the root is off sys.path before any plugin imports.
    assert "python -P -m pytest" in (ROOT / "scripts" / "test.sh").read_text()
    env = _ros_like_install(tmp_path)
    code = f"import launch; assert getattr(launch, {ROS_MARKER!r}, False), launch.__file__"
    assert subprocess.run([sys.executable, "-P", "-c", code], cwd=ROOT, env=env).returncode == 0
    # Without -P the repository's folder wins: the reason for both guards.
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True).returncode != 0
