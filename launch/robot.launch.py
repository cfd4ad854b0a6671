"""ROS 2 launch file of the "robot" graph: the stack without sim_node, for a real robot.

    ros2 launch forethought robot.launch.py params_file:=my_robot.yaml
    ros2 topic pub --once /task_command std_msgs/String "{data: 'push the red block to the left zone'}"

world_model_node, policy_controller, executive and planner_node, on the system clock (no
``use_sim_time``). The robot's driver (ros2_control's joint_trajectory_controller, or any node
that does what it does) and a perception node provide ``joint_states`` and
``objects/<name>/pose`` and execute ``joint_trajectory``; ``robot.yaml`` documents exactly what
they must publish and which parameters describe the robot (joints, limits, control period,
frame, objects, input ages). ``params_file`` is your copy of it, applied over the packaged one.
Nodes, names and params come from ``forethought.ros_ws.graph`` (see
``forethought.launch.describe``); the same graph starts without the launch system as
``forethought run robot --params my_robot.yaml``.

Only ``params_file`` and ``until_success`` are launch arguments: every other parameter belongs in
the robot's YAML (a launch argument would override it with the packaged default).
"""

from __future__ import annotations

from launch import LaunchDescription

from forethought.launch.describe import UNTIL_SUCCESS, graph_launch_description


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description("robot", UNTIL_SUCCESS)
