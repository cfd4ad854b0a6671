"""forethought's ROS node graphs, declared once as data.

Both entry points read this module, so they start the same nodes with the same parameters:

- ``forethought run <graph>`` (``runner.py``): one ``python -m <module>`` process per node,
  without the ROS launch system (which is not on PyPI);
- ``ros2 launch forethought <graph>.launch.py`` (``launch/sim.launch.py``): one
  ``launch_ros.actions.Node(executable=<executable>)`` per node on a ROS 2 install.

Graphs: ``sim`` (sim_node + the controller), ``stack`` (sim_node + the whole loop) and ``robot``
(the whole loop without sim_node: a robot driver and a perception node provide ``joint_states``
and ``objects/<name>/pose`` and execute ``joint_trajectory``; see ``launch/robot.yaml``).

Time: in a graph with ``sim_node`` (``has_sim``), sim_node is the clock (it publishes ``/clock``)
and every other node gets ``use_sim_time: true`` among its ``fixed`` parameters (``on_sim_clock``);
the robot graph's nodes use the system clock, as the driver's stamps do.

Pure data: importing this module imports neither rclpy nor the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
        stack's sim node must not stop when one step of a longer plan succeeds; ``use_sim_time``).
    """

    name: str
    module: str
    executable: str
    params_file: str
    remaps: tuple[tuple[str, str], ...] = ()
    namespace: str = ""
    primary: bool = False
    fixed: tuple[tuple[str, object], ...] = ()


SIM_NODE = "sim_node"
"""The simulator node: the clock of any graph that has it."""


def on_sim_clock(*nodes: NodeSpec) -> tuple[NodeSpec, ...]:
    """``nodes`` with ``use_sim_time: true`` fixed on every node but ``SIM_NODE``, which publishes ``/clock``."""
    return tuple(n if n.name == SIM_NODE else replace(n, fixed=(*n.fixed, ("use_sim_time", True))) for n in nodes)


GRAPHS: dict[str, tuple[NodeSpec, ...]] = {
    "sim": on_sim_clock(
        NodeSpec(SIM_NODE, "forethought.ros_ws.sim_node", "sim_node", "sim.yaml", primary=True),
        NodeSpec("policy_controller", "forethought.ros_ws.policy_controller", "policy_controller", "sim.yaml"),
    ),
    "stack": on_sim_clock(
        NodeSpec(SIM_NODE, "forethought.ros_ws.sim_node", "sim_node", "stack.yaml", fixed=(("exit_on_success", False),)),
        NodeSpec("world_model_node", "forethought.ros_ws.world_model_node", "world_model_node", "stack.yaml"),
        NodeSpec("policy_controller", "forethought.ros_ws.policy_controller", "policy_controller", "stack.yaml"),
        NodeSpec("executive", "forethought.ros_ws.executive", "executive", "stack.yaml", primary=True),
        NodeSpec("planner_node", "forethought.ros_ws.planner_node", "planner_node", "stack.yaml"),
    ),
    "robot": (
        NodeSpec("world_model_node", "forethought.ros_ws.world_model_node", "world_model_node", "robot.yaml"),
        NodeSpec("policy_controller", "forethought.ros_ws.policy_controller", "policy_controller", "robot.yaml"),
        NodeSpec("executive", "forethought.ros_ws.executive", "executive", "robot.yaml", primary=True),
        NodeSpec("planner_node", "forethought.ros_ws.planner_node", "planner_node", "robot.yaml"),
    ),
}
"""graph name -> its nodes, in start order."""


def has_sim(graph: str) -> bool:
    """Whether ``graph`` runs ``SIM_NODE`` (the simulator options and launch arguments apply to it)."""
    return any(n.name == SIM_NODE for n in GRAPHS[graph])
