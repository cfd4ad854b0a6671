"""ROS 2 launch file of the "stack" graph: sim_node, world_model_node, policy_controller, executive, planner_node.

    ros2 launch forethought stack.launch.py
    ros2 launch forethought stack.launch.py command:='push the green block next to the red one' \\
        policy:=dmpc until_success:=true video:=/tmp/stack.mp4
    ros2 topic pub --once /task_command std_msgs/String "{data: 'go to the top left corner'}"

A natural-language command (the ``command`` argument, or any message on ``task_command``) is
planned by the LLM planner (SSD decoding), and the executive hands its steps one by one to the
policy controller, which drives the MuJoCo sim node; the world model node tells the executive
how surprising each observation is (``surprise``). sim_node is the clock: every other node runs
with ``use_sim_time``. Nodes, names and params come from ``forethought.ros_ws.graph`` and
``stack.yaml`` (``params_file:=FILE`` applies a YAML over it; see ``forethought.launch.describe``);
the same graph starts without the launch system as ``forethought run stack``. ``robot.launch.py``
is this graph without sim_node, for a real robot.
"""

from __future__ import annotations

from launch import LaunchDescription

from forethought.launch.describe import SIM_ARGUMENTS, graph_launch_description

ARGUMENTS = {
    "command": ("command", str, "natural-language task planned at start-up"),
    "policy": ("policy", str, "controller policy: dmpc, proposer, expert, ..."),
    "planner": ("planner", str, "dmpc planner: ssr, mppi or cem"),
    "policy_options": ("policy_options", str, "JSON object of extra policy options"),
    "mode": ("mode", str, "planner decoding mode: ar, sd or ssd"),
    **SIM_ARGUMENTS,
}


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description("stack", ARGUMENTS)
