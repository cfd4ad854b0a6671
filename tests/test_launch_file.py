"""``launch/*.launch.py``: each builds its graph of ``forethought.ros_ws.graph`` with the params YAML.

The real check needs ``launch_ros`` (a ROS 2 install; it is not on PyPI) and is skipped without
it. The wiring check runs everywhere: it loads the launch file against minimal stand-ins for the
``launch`` / ``launch_ros`` classes it uses and inspects what it passes them.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import yaml

from forethought.ros_ws.graph import GRAPHS
from forethought.sim.scene import validate_step

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"


def load_launch_module(graph: str) -> types.ModuleType:
    sys.modules.pop("forethought.launch.describe", None)  # re-import against the launch classes in sys.modules
    spec = importlib.util.spec_from_file_location(f"forethought_{graph}_launch", LAUNCH_DIR / f"{graph}.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_graph_has_a_launch_file_and_yaml() -> None:
    for graph, nodes in GRAPHS.items():
        assert (LAUNCH_DIR / f"{graph}.launch.py").is_file()
        assert {n.params_file for n in nodes} == {f"{graph}.yaml"}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_description_builds_with_launch_ros(graph: str) -> None:
    pytest.importorskip("launch_ros")
    from launch import LaunchContext
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
    from launch_ros.actions import Node

    def text(value) -> str:  # a str, or substitutions (launch_ros versions differ)
        return value if isinstance(value, str) else perform_substitutions(
            LaunchContext(), normalize_to_list_of_substitutions(value))

    ld = load_launch_module(graph).generate_launch_description()
    nodes = [e for e in ld.entities if isinstance(e, Node)]
    assert [text(n.node_executable) for n in nodes] == [s.executable for s in GRAPHS[graph]]
    assert {text(n.node_package) for n in nodes} == {"forethought"}
    args = {a.name: a for a in ld.get_launch_arguments()}
    assert {"video", "until_success", "n_blocks", "seed"} <= set(args)
    if "task" in args:
        validate_step(json.loads(text(args["task"].default_value)))


class _Recorder:
    """Stands in for a launch class: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_wiring_matches_graph_and_yaml(graph: str, monkeypatch: pytest.MonkeyPatch) -> None:
    classes = {
        "launch": {"LaunchDescription": _Recorder},
        "launch.actions": {"DeclareLaunchArgument": type("DeclareLaunchArgument", (_Recorder,), {}),
                           "Shutdown": type("Shutdown", (_Recorder,), {})},
        "launch.substitutions": {"LaunchConfiguration": type("LaunchConfiguration", (_Recorder,), {})},
        "launch_ros": {},
        "launch_ros.actions": {"Node": type("Node", (_Recorder,), {})},
        "launch_ros.parameter_descriptions": {"ParameterValue": type("ParameterValue", (_Recorder,), {})},
    }
    for name, attrs in classes.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    ld = load_launch_module(graph).generate_launch_description()
    entities = ld.args[0]
    nodes = [e for e in entities if type(e).__name__ == "Node"]
    declared = {e.args[0]: e.kwargs for e in entities if type(e).__name__ == "DeclareLaunchArgument"}

    params_file = LAUNCH_DIR / f"{graph}.yaml"
    assert len(nodes) == len(GRAPHS[graph])
    defaults = yaml.safe_load(params_file.read_text())["/**"]["ros__parameters"]
    for node, spec in zip(nodes, GRAPHS[graph]):
        kw = node.kwargs
        assert (kw["package"], kw["executable"], kw["name"]) == ("forethought", spec.executable, spec.name)
        yaml_path, overrides, *fixed = kw["parameters"]
        assert Path(yaml_path).resolve() == params_file.resolve()  # not in the ament index here: beside the file
        assert set(overrides) <= set(defaults), "a launch argument sets a parameter the YAML does not have"
        for value in overrides.values():
            assert value.args[0].args[0] in declared  # ParameterValue(LaunchConfiguration(<declared arg>))
        assert fixed == ([dict(spec.fixed)] if spec.fixed else [])  # fixed parameters come last: they win
        if spec.primary:  # its exit ends the launch; the others are respawned
            assert type(kw["on_exit"]).__name__ == "Shutdown" and "respawn" not in kw
        else:
            assert kw["respawn"] is True and kw["respawn_max_retries"] >= 1 and "on_exit" not in kw
    assert declared["video"]["default_value"] == ""
    assert declared["until_success"]["default_value"] == "false"
    if "task" in declared:
        validate_step(json.loads(declared["task"]["default_value"]))
        assert declared["task"]["default_value"] == defaults["task"]


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_params_yaml_matches_node_parameters(graph: str) -> None:
    """Every YAML parameter is declared by some node of the graph, with the same type.

    Paths to shipped weights stay out of the YAML (the nodes find them in the installed package).
    """
    pytest.importorskip("rclpy")
    declared: dict[str, tuple] = {}
    for spec in GRAPHS[graph]:
        declared.update(importlib.import_module(spec.module).PARAMS)
    params = yaml.safe_load((LAUNCH_DIR / f"{graph}.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) <= set(declared)
    for name, value in params.items():
        assert type(value) is type(declared[name][0]), name
        assert not (isinstance(value, str) and "pretrained" in value), f"{name}: a path to shipped weights"
