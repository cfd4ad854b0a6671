"""ROS 2 launch file of the "sim" graph: MuJoCo sim_node + policy_controller running the scripted expert.

    ros2 launch forethought sim.launch.py
    ros2 launch forethought sim.launch.py \\
        task:='{"skill": "push", "object": "red_block", "target": "left"}' \\
        video:=/tmp/demo.mp4 until_success:=true n_blocks:=3 seed:=0

The nodes, names, remaps and params YAML come from ``forethought.ros_ws.graph`` (the data that
``forethought run sim`` also starts from, on installs without the launch system); see
``forethought.launch.describe``. Launch arguments (defaults read from ``sim.yaml``) override it
for every node; ``params_file:=FILE`` applies a YAML over ``sim.yaml``. sim_node is the clock:
policy_controller runs with ``use_sim_time``. Discovery stays on loopback unless ROS_AUTOMATIC_DISCOVERY_RANGE says otherwise
(each node opens with ``forethought.runtime.prepare_node_process``, before rclpy starts).
"""

from __future__ import annotations

from launch import LaunchDescription

from forethought.launch.describe import SIM_ARGUMENTS, graph_launch_description
from forethought.ros_ws.graph import DEFAULT_TASK

ARGUMENTS = {
    "task": ("task", str, "JSON plan step"),
    **SIM_ARGUMENTS,
}


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description("sim", ARGUMENTS, {"task": DEFAULT_TASK})
