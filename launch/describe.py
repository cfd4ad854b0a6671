"""Build a ROS 2 launch description from a graph of ``forethought.ros_ws.graph``.

The launch files (``sim.launch.py``, ``stack.launch.py``, ``robot.launch.py``) call
``graph_launch_description``: one ``launch_ros`` ``Node`` per node of the graph, each with, in
rising precedence:

1. the graph's params YAML: ``share/forethought/launch/<graph>.yaml``, or the one beside this
   file when the package is not in the ament index (a source checkout);
2. the ``params_file`` argument's YAML (e.g. ``params_file:=my_robot.yaml``; default: the
   graph's YAML again);
3. the launch arguments, defaults read from the graph's YAML, so they win over ``params_file``
   whether given or not: keep a parameter that has an argument out of that file, or pass the
   argument. ``n_blocks`` also sets ``objects`` to the first n blocks;
4. the node's fixed parameters (``use_sim_time`` in graphs with sim_node).

Supervision, as ``forethought run`` does it: every node but the graph's primary one is respawned
when it exits (``respawn``, after ``RESPAWN_DELAY_S``, at most ``RESPAWN_MAX_RETRIES`` times);
when the primary node exits (sim: sim_node; stack, robot: the executive, e.g. the plan done
with ``until_success:=true``) the whole launch shuts down.
"""

from __future__ import annotations

import os
from typing import List, Mapping

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from forethought.ros_ws.graph import GRAPHS
from forethought.sim.scene import BLOCK_NAMES

RESPAWN_DELAY_S = 1.0
RESPAWN_MAX_RETRIES = 3

Arguments = Mapping[str, tuple[str, type, str]]
"""launch argument -> (node parameter, type, description)."""

PARAMS_FILE_ARGUMENT = "params_file"
"""The argument every graph has: a params YAML over the packaged one."""
UNTIL_SUCCESS: dict[str, tuple[str, type, str]] = {
    "until_success": ("exit_on_success", bool, "stop when the task is done (stack, robot: the whole plan)"),
}
"""The argument of every graph, for its primary node."""
SIM_ARGUMENTS: dict[str, tuple[str, type, str]] = {
    "video": ("video_path", str, "MP4/GIF written when sim_node exits; empty: none"),
    "n_blocks": ("n_blocks", int, "blocks on the table, 1 to 3"),
    "seed": ("seed", int, "episode seed"),
    "timeout": ("max_duration_s", float, "stop sim_node after this many sim seconds; 0: never"),
    "rate_factor": ("real_time_factor", float, "sim seconds per wall second"),
    **UNTIL_SUCCESS,
}
"""The arguments of the graphs with sim_node, for sim_node (``until_success``: for the primary node)."""


def params_dir() -> str:
    """Where the params YAML lives: the package share directory, else beside this file."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return os.path.join(get_package_share_directory("forethought"), "launch")
    except (ImportError, LookupError, OSError):  # no ament index, no AMENT_PREFIX_PATH, not installed
        return os.path.dirname(os.path.abspath(__file__))


def yaml_defaults(path: str) -> dict:
    """The wildcard (``/**``) parameters of a params YAML."""
    with open(path) as f:
        return yaml.safe_load(f).get("/**", {}).get("ros__parameters", {})


def graph_launch_description(graph: str, arguments: Arguments, defaults: Mapping[str, object] = {}) -> LaunchDescription:
    """Every node of ``graph`` with its params YAML, the ``params_file`` argument's YAML, the launch
    ``arguments`` over them, then its fixed parameters."""
    params_file = os.path.join(params_dir(), GRAPHS[graph][0].params_file)
    values = {**defaults, **yaml_defaults(params_file)}
    overrides = {param: ParameterValue(LaunchConfiguration(arg), value_type=kind)
                 for arg, (param, kind, _) in arguments.items()}
    if "n_blocks" in arguments:  # the env's first n blocks: the objects whose poses every node expects
        overrides["objects"] = ParameterValue(PythonExpression(
            [repr(list(BLOCK_NAMES)), "[:", LaunchConfiguration("n_blocks"), "]"]), value_type=List[str])
    entities = [DeclareLaunchArgument(PARAMS_FILE_ARGUMENT, default_value=params_file,
                                      description="params YAML over the packaged one (e.g. your robot's; "
                                                  "the other arguments win over it)")]
    entities += [DeclareLaunchArgument(arg, default_value=str(values.get(param, "")).lower() if kind is bool
                                       else str(values.get(param, "")), description=desc)
                 for arg, (param, kind, desc) in arguments.items()]
    for spec in GRAPHS[graph]:
        parameters = [os.path.join(params_dir(), spec.params_file), LaunchConfiguration(PARAMS_FILE_ARGUMENT),
                      overrides]
        if spec.fixed:
            parameters.append(dict(spec.fixed))
        entities.append(Node(
            package="forethought",
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,
            parameters=parameters,
            remappings=list(spec.remaps),
            output="screen",
            emulate_tty=True,
            **({"on_exit": Shutdown(reason=f"{spec.name} exited")} if spec.primary else
               {"respawn": True, "respawn_delay": RESPAWN_DELAY_S, "respawn_max_retries": RESPAWN_MAX_RETRIES}),
        ))
    return LaunchDescription(entities)
