"""What ros2_control's ``joint_trajectory_controller`` accepts, as a test helper (no ROS needed).

Rules of ``JointTrajectoryController::validate_trajectory_msg`` in ros-controls/ros2_controllers,
``joint_trajectory_controller/src/joint_trajectory_controller.cpp`` (jazzy), the one check behind
both the ``~/joint_trajectory`` topic and the ``FollowJointTrajectory`` action, with the
controller's defaults (``allow_partial_joints_goal`` false,
``allow_nonzero_velocity_at_trajectory_end`` false, no effort command interface).
``validate_trajectory_msg`` returns the broken rules (empty: the controller accepts it).

``chunk_contract`` adds forethought's own contract for the controller's chunks (issue 13): at
least two points, ``time_from_start`` one control period apart from one period ahead, stamp
zero, positions only.
"""

from __future__ import annotations

from typing import Any, Sequence

FLOAT_EPSILON = 1.1920929e-07  # std::numeric_limits<float>::epsilon(), the controller's "non-zero velocity"


def _seconds(t: Any) -> float:
    return t.sec + 1e-9 * t.nanosec


def validate_trajectory_msg(msg: Any, joints: Sequence[str], now_s: float, allow_partial_joints_goal: bool = False,
                            allow_nonzero_velocity_at_trajectory_end: bool = False,
                            has_effort_command_interface: bool = False) -> list[str]:
    """Every rule of ``validate_trajectory_msg`` that ``msg`` (trajectory_msgs/JointTrajectory) breaks.

    ``joints``: the controller's joints; ``now_s``: the controller's ``now()`` in seconds (rule 6).
    """
    broken: list[str] = []
    names = list(msg.joint_names)
    # 1. "Joints on incoming trajectory don't match the controller joints." (partial goals off)
    if not allow_partial_joints_goal and len(names) != len(joints):
        broken.append(f"rule 1: {len(names)} joint names for {len(joints)} controller joints (partial goals off)")
    # 2. "Empty joint names on incoming trajectory."
    if not names:
        broken.append("rule 2: empty joint_names")
    # 3. "Empty trajectory received."
    if not msg.points:
        broken.append("rule 3: no points")
        return broken
    # 4. "Incoming joint <name> doesn't match the controller's joints."
    broken += [f"rule 4: joint {n!r} is not a controller joint" for n in names if n not in joints]
    # 5. "Velocity of last trajectory point of joint <name> is not zero" (unless allowed)
    last = msg.points[-1]
    if not allow_nonzero_velocity_at_trajectory_end:
        broken += [f"rule 5: last point velocity {v} of joint {i} is not zero" for i, v in enumerate(last.velocities)
                   if abs(v) > FLOAT_EPSILON]
    # 6. "Received trajectory with non-zero start time (<t>) that ends in the past (<end>)"
    start = _seconds(msg.header.stamp)
    if start != 0.0 and start + _seconds(last.time_from_start) < now_s:
        broken.append(f"rule 6: non-zero start time {start:.3f} that ends in the past (now {now_s:.3f})")
    for i, pt in enumerate(msg.points):
        # 7. "Time between points <i> and <i+1> is not strictly increasing"
        if i > 0 and _seconds(pt.time_from_start) <= _seconds(msg.points[i - 1].time_from_start):
            broken.append(f"rule 7: time between points {i - 1} and {i} is not strictly increasing")
        # 8. "Mismatching number of positions / velocities / accelerations in point #<i>"
        n = len(names)
        if len(pt.positions) != n:
            broken.append(f"rule 8: point {i} has {len(pt.positions)} positions for {n} joints")
        if len(pt.velocities) not in (0, n) or len(pt.accelerations) not in (0, n):
            broken.append(f"rule 8: point {i} velocities/accelerations must be empty or one per joint")
        # 9. "Effort is not supported without an effort command interface"
        if len(pt.effort) > 0 and not has_effort_command_interface:
            broken.append(f"rule 9: point {i} gives effort without an effort command interface")
    return broken


def chunk_contract(msg: Any, period: float) -> list[str]:
    """forethought's contract for the controller's trajectories (issue 13); empty when it holds."""
    broken: list[str] = []
    if _seconds(msg.header.stamp) != 0.0:
        broken.append("stamp is not zero (start on receipt)")
    if len(msg.points) < 2:
        broken.append(f"{len(msg.points)} point(s): a chunk has at least two")
    for i, pt in enumerate(msg.points):
        if abs(_seconds(pt.time_from_start) - (i + 1) * period) > 1e-6:
            broken.append(f"point {i} at {_seconds(pt.time_from_start):.4f} s, expected {(i + 1) * period:.4f} s")
        if len(pt.velocities) and (i < len(msg.points) - 1 or any(pt.velocities)):
            broken.append(f"point {i} has velocities: positions only (or a zero velocity at the end)")
        if len(pt.accelerations) or len(pt.effort):
            broken.append(f"point {i} has accelerations or effort: positions only")
    return broken
