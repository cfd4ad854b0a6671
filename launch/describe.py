"""Build a ROS 2 launch description from a graph of ``forethought.ros_ws.graph``.

The launch files (``sim.launch.py``, ``stack.launch.py``) call ``graph_launch_description``: one
``launch_ros`` ``Node`` per node of the graph, each with the graph's params YAML, then the launch
arguments (defaults read from that YAML), then the node's fixed parameters. The YAML is
``share/forethought/launch/<graph>.yaml``, or the one beside this file when the package is not in
the ament index (a source checkout).

Supervision, as ``forethought run`` does it: every node but the graph's primary one is respawned
when it exits (``respawn``, after ``RESPAWN_DELAY_S``, at most ``RESPAWN_MAX_RETRIES`` times);
when the primary node exits (sim: sim_node; stack: the executive, e.g. the plan done with
``until_success:=true``) the whole launch shuts down.
"""

from __future__ import annotations

import os
from typing import Mapping

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from forethought.ros_ws.graph import GRAPHS

RESPAWN_DELAY_S = 1.0
RESPAWN_MAX_RETRIES = 3

Arguments = Mapping[str, tuple[str, type, str]]
"""launch argument -> (node parameter, type, description)."""

GRAPH_ARGUMENTS: dict[str, tuple[str, type, str]] = {
    "video": ("video_path", str, "MP4/GIF written when sim_node exits; empty: none"),
    "n_blocks": ("n_blocks", int, "blocks on the table, 1 to 3"),
    "seed": ("seed", int, "episode seed"),
    "timeout": ("max_duration_s", float, "stop sim_node after this many sim seconds; 0: never"),
    "rate_factor": ("real_time_factor", float, "sim seconds per wall second"),
    "until_success": ("exit_on_success", bool, "stop when the task is done (stack: the whole plan)"),
}
"""The arguments of every graph, for its sim_node (``until_success``: for its primary node)."""


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
    """Every node of ``graph`` with its params YAML, the launch ``arguments`` over it, then its fixed parameters."""
    params_file = os.path.join(params_dir(), GRAPHS[graph][0].params_file)
    values = {**defaults, **yaml_defaults(params_file)}
    overrides = {param: ParameterValue(LaunchConfiguration(arg), value_type=kind)
                 for arg, (param, kind, _) in arguments.items()}
    entities = [DeclareLaunchArgument(arg, default_value=str(values.get(param, "")).lower() if kind is bool
                                      else str(values.get(param, "")), description=desc)
                for arg, (param, kind, desc) in arguments.items()]
    for spec in GRAPHS[graph]:
        parameters = [os.path.join(params_dir(), spec.params_file), overrides]
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
