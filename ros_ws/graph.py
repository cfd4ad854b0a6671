"""forethought's ROS node graphs, declared once as data.

Both entry points read this module, so they start the same nodes with the same parameters:

- ``forethought run <graph>`` (``runner.py``): one ``python -m <module>`` process per node,
  without the ROS launch system (which is not on PyPI);
- ``ros2 launch forethought <graph>.launch.py`` (``launch/sim.launch.py``): one
  ``launch_ros.actions.Node(executable=<executable>)`` per node on a ROS 2 install.

Pure data: importing this module imports neither rclpy nor the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TASK = '{"skill": "push", "object": "red_block", "target": "left"}'
"""The plan step the sim graph starts with (also the default in ``launch/sim.yaml``)."""
DEFAULT_COMMAND = "push the red block to the left zone"
"""The natural-language task the stack graph plans at start-up (also in ``launch/stack.yaml``)."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph.

    name: node name (``-r __node:=name``); also its section in the params YAML.
    module: Python module run as ``python -m module`` by the pip-only runner.
    executable: the script under ``lib/forethought/`` on a ROS 2 install (``ros_ws/bin/``).
    params_file: YAML in ``launch/`` (``forethought.launch`` / ``share/forethought/launch``).
    remaps: ``(from, to)`` topic remappings, passed as ``-r from:=to``.
    namespace: ROS namespace; empty for none.
    primary: the node whose own exit ends the graph; the runner returns its exit code.
    fixed: parameters this node always gets in this graph, over the runner's options (the
        stack's sim node must not stop when one step of a longer plan succeeds).
    """

    name: str
    module: str
    executable: str
    params_file: str
    remaps: tuple[tuple[str, str], ...] = ()
    namespace: str = ""
    primary: bool = False
    fixed: tuple[tuple[str, object], ...] = ()


GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    "sim": (
        NodeSpec("sim_node", "forethought.ros_ws.sim_node", "sim_node", "sim.yaml", primary=True),
        NodeSpec("policy_controller", "forethought.ros_ws.policy_controller", "policy_controller", "sim.yaml"),
    ),
    "stack": (
        NodeSpec("sim_node", "forethought.ros_ws.sim_node", "sim_node", "stack.yaml", fixed=(("exit_on_success", False),)),
        NodeSpec("world_model_node", "forethought.ros_ws.world_model_node", "world_model_node", "stack.yaml"),
        NodeSpec("policy_controller", "forethought.ros_ws.policy_controller", "policy_controller", "stack.yaml"),
        NodeSpec("executive", "forethought.ros_ws.executive", "executive", "stack.yaml", primary=True),
        NodeSpec("planner_node", "forethought.ros_ws.planner_node", "planner_node", "stack.yaml"),
    ),
}
"""graph name -> its nodes, in start order."""
