"""``launch/*.launch.py``: each builds its graph of ``forethought.ros_ws.graph`` with the params YAML.

Also the graphs' data: ``use_sim_time`` on every node but sim_node where sim_node is the clock,
none in the robot graph; the YAML's ``objects`` match its ``n_blocks``.

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

from forethought.ros_ws.graph import GRAPHS, SIM_NODE, has_sim
from forethought.sim.scene import BLOCK_NAMES, validate_step

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


def test_sim_time_exactly_where_sim_node_is_the_clock() -> None:
    assert GRAPHS.keys() == {"sim", "stack", "robot"}
    assert not has_sim("robot") and has_sim("sim") and has_sim("stack")
    for graph, nodes in GRAPHS.items():
        for spec in nodes:
            assert dict(spec.fixed).get("use_sim_time", False) is (has_sim(graph) and spec.name != SIM_NODE), spec
    assert [n.name for n in GRAPHS["robot"]] == [n.name for n in GRAPHS["stack"] if n.name != SIM_NODE]
    assert [n.name for n in GRAPHS["robot"] if n.primary] == ["executive"]


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_yaml_objects_are_the_blocks_on_the_table(graph: str) -> None:
    params = yaml.safe_load((LAUNCH_DIR / f"{graph}.yaml").read_text())["/**"]["ros__parameters"]
    if has_sim(graph):
        assert params["objects"] == list(BLOCK_NAMES[: params["n_blocks"]])
        assert params["publish_clock"] is True
    else:  # the robot's description: every input and limit is a parameter here, nothing of the simulator
        assert {"joint_names", "objects", "frame", "max_age_s", "sync_tolerance_s", "control_rate_hz", "position_min",
                "position_max", "max_velocity", "max_acceleration", "limit_mode"} <= set(params)
        assert not {"n_blocks", "seed", "video_path", "publish_clock", "real_time_factor", "use_sim_time"} & set(params)
        assert params["command"] == "", "the robot must not move before it is given a command"


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
    assert {"params_file", "until_success"} <= set(args)
    assert ({"video", "n_blocks", "seed"} <= set(args)) is has_sim(graph)
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
        "launch.substitutions": {"LaunchConfiguration": type("LaunchConfiguration", (_Recorder,), {}),
                                 "PythonExpression": type("PythonExpression", (_Recorder,), {})},
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
        yaml_path, user_yaml, shared, *fixed = kw["parameters"]
        overrides = dict(shared)
        assert Path(yaml_path).resolve() == params_file.resolve()  # not in the ament index here: beside the file
        assert user_yaml.args == ("params_file",)  # the user's YAML, over the packaged one
        assert Path(declared["params_file"]["default_value"]).resolve() == params_file.resolve()
        assert set(overrides) <= set(defaults), "a launch argument sets a parameter the YAML does not have"
        objects = overrides.pop("objects", None)
        for value in overrides.values():
            assert value.args[0].args[0] in declared  # ParameterValue(LaunchConfiguration(<declared arg>))
        if has_sim(graph):  # n_blocks also sets objects: the first n blocks, as in the YAML
            parts = objects.args[0].args[0]  # ParameterValue(PythonExpression([...]))
            text = "".join(p if isinstance(p, str) else declared[p.args[0]]["default_value"] for p in parts)
            assert eval(text) == defaults["objects"]
        else:
            assert objects is None and set(declared) == {"params_file", "until_success"}
        assert fixed == ([dict(spec.fixed)] if spec.fixed else [])  # fixed parameters come last: they win
        if spec.primary:  # its exit ends the launch; the others are respawned
            assert type(kw["on_exit"]).__name__ == "Shutdown" and "respawn" not in kw
        else:
            assert kw["respawn"] is True and kw["respawn_max_retries"] >= 1 and "on_exit" not in kw
    assert declared.get("video", {"default_value": ""})["default_value"] == ""
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
