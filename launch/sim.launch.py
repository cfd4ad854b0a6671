"""ROS 2 launch file of the "sim" graph: MuJoCo sim_node + expert_controller.

    ros2 launch forethought sim.launch.py
    ros2 launch forethought sim.launch.py \\
        task:='{"skill": "push", "object": "red_block", "target": "left"}' \\
        video:=/tmp/demo.mp4 until_success:=true n_blocks:=3 seed:=0

The nodes, names, remaps and params YAML come from ``forethought.ros_ws.graph`` (the data that
``forethought run sim`` also starts from, on installs without the launch system); the YAML is
``share/forethought/launch/sim.yaml``, or the one beside this file when the package is not in the
ament index (a source checkout). Launch arguments (defaults read from that YAML) override it for
every node. Discovery stays on loopback unless ROS_AUTOMATIC_DISCOVERY_RANGE says otherwise (the
nodes apply ``forethought.runtime.apply_defaults`` before rclpy starts).
"""

from __future__ import annotations

import os

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from forethought.ros_ws.graph import DEFAULT_TASK, GRAPHS

GRAPH = "sim"
# launch argument -> (node parameter, type, description); defaults come from the params YAML.
ARGUMENTS = {
    "task": ("task", str, "JSON plan step"),
    "video": ("video_path", str, "MP4/GIF written when sim_node exits; empty: none"),
    "n_blocks": ("n_blocks", int, "blocks on the table, 1 to 3"),
    "seed": ("seed", int, "episode seed"),
    "until_success": ("exit_on_success", bool, "stop sim_node when the task succeeds"),
    "timeout": ("max_duration_s", float, "stop sim_node after this many sim seconds; 0: never"),
    "rate_factor": ("real_time_factor", float, "sim seconds per wall second"),
}


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


def generate_launch_description() -> LaunchDescription:
    params_file = os.path.join(params_dir(), GRAPHS[GRAPH][0].params_file)
    defaults = {"task": DEFAULT_TASK, **yaml_defaults(params_file)}
    overrides = {param: ParameterValue(LaunchConfiguration(arg), value_type=kind)
                 for arg, (param, kind, _) in ARGUMENTS.items()}
    entities = [DeclareLaunchArgument(arg, default_value=str(defaults.get(param, "")).lower() if kind is bool
                                      else str(defaults.get(param, "")), description=desc)
                for arg, (param, kind, desc) in ARGUMENTS.items()]
    for spec in GRAPHS[GRAPH]:
        entities.append(Node(
            package="forethought",
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,
            parameters=[os.path.join(params_dir(), spec.params_file), overrides],
            remappings=list(spec.remaps),
            output="screen",
            emulate_tty=True,
        ))
    return LaunchDescription(entities)
