"""Packaging contracts: folder-to-subpackage mapping, the CLI, process defaults, ROS metadata."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from forethought import cli, runtime

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", ["sim", "models", "llm_planner", "ros_ws", "launch"])
def test_folder_imports_as_subpackage(folder: str) -> None:
    spec = importlib.util.find_spec(f"forethought.{folder}")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).resolve().parent == (ROOT / folder).resolve()


@pytest.mark.parametrize("bare", ["sim", "models", "llm_planner", "ros_ws"])
def test_no_bare_top_level_module(bare: str) -> None:
    # Run from a neutral directory so the repository root is not on sys.path.
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({bare!r}) is None else 1)"
    assert subprocess.run([sys.executable, "-c", code], cwd="/", check=False).returncode == 0


def test_help_lists_every_verb() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "forethought.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for verb in cli.COMMANDS:
        assert verb in out


@pytest.mark.parametrize("verb", sorted(cli.COMMANDS))
def test_each_verb_has_help(verb: str) -> None:
    res = subprocess.run([sys.executable, "-m", "forethought.cli", verb, "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "usage: forethought " + verb in res.stdout


def test_train_has_one_subcommand_per_model() -> None:
    from forethought.models import cli_train

    models = [*cli_train.TRAINERS, *cli_train.LLM_TRAINERS]
    assert {"proposer", "world-model", "draft", "planner-lora"} <= set(models)
    for model in models:
        res = subprocess.run([sys.executable, "-m", "forethought.cli", "train", model, "--help"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert f"usage: forethought train {model}" in res.stdout and "--out" in res.stdout


def test_defaults_keep_discovery_local_without_overriding_user() -> None:
    env = runtime.apply_defaults({"MUJOCO_GL": "osmesa"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["MUJOCO_GL"] == "osmesa"


def test_warns_when_both_onnxruntime_builds_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.importlib.metadata, "version", lambda dist: "1.31.1")
    with pytest.warns(RuntimeWarning, match="onnxruntime-gpu"):
        assert runtime.check_onnxruntime_install() == "onnxruntime-gpu"


def test_single_onnxruntime_install_is_quiet() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runtime.check_onnxruntime_install() in {"onnxruntime", "onnxruntime-gpu"}


def test_package_xml_is_ament_python_format_3() -> None:
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "forethought"
    assert root.find("export/build_type").text == "ament_python"
    assert (ROOT / "resource" / "forethought").is_file()


def test_node_executables_for_ros_install_are_executable() -> None:
    from forethought.ros_ws.graph import GRAPHS

    names = {node.executable for graph in GRAPHS.values() for node in graph}
    assert "world_model_node" in names
    for name in sorted(names):
        path = ROOT / "ros_ws" / "bin" / name
        assert os.access(path, os.X_OK), path
        assert f"forethought.ros_ws.{name} import main" in path.read_text()


# -- Packaging for ROS users: old system setuptools, ROS wheels as an extra -------------------------

import tomllib  # noqa: E402

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEBIAN_12_SETUPTOOLS = (66, 1)
"""The oldest setuptools colcon meets (Debian 12; Ubuntu 24.04 has 68.1): .ci/run builds with it."""


def test_pyproject_license_is_readable_by_old_and_new_setuptools() -> None:
    project = PYPROJECT["project"]
    # setuptools < 77 rejects PEP 639's string; >= 77 deprecates the table: setup.py sets it.
    assert "license" not in project and "license" in project["dynamic"]
    floor = next(r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools"))
    assert tuple(int(x) for x in floor.split(">=")[1].split(".")[:2]) <= DEBIAN_12_SETUPTOOLS, floor
    assert "setuptools==66.1.1" in (ROOT / ".ci" / "run").read_text()


def test_setup_py_writes_the_license_for_this_setuptools(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    pkg_info = (tmp_path / "forethought.egg-info" / "PKG-INFO").read_text().splitlines()
    ros_license = ET.parse(ROOT / "package.xml").getroot().findtext("license")
    field = "License-Expression" if int(setuptools_version().split(".")[0]) >= 77 else "License"
    assert f"{field}: {ros_license}" in pkg_info, pkg_info[:12]


def setuptools_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("setuptools")


def test_ros_wheels_are_an_extra_that_setup_sh_installs() -> None:
    core = PYPROJECT["project"]["dependencies"]
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not [d for d in core if d.startswith("ros-jazzy-")], "a ROS install gets these from apt, not pip"
    ros = extras["ros"]
    assert ros and all(d.startswith("ros-jazzy-") for d in ros)
    # Every ROS package the nodes need as a wheel is also an exec_depend for colcon/rosdep users.
    exec_depends = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    for wheel in ros:
        name = wheel.split("==")[0].removeprefix("ros-jazzy-").replace("-", "_")
        assert name in exec_depends or name.startswith("rmw_"), name
    setup_sh = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'pip install -q -e ".[${extra},ros,dev]"' in setup_sh
    assert "missing+=(python3-venv)" in setup_sh and "import ensurepip, venv" in setup_sh
