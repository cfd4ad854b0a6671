"""Model-predictive control: objectives from plan steps, SSR / MPPI / CEM planners, oracle dynamics.

The world model's latent planners (``world_model.latent_planner``) are these planners over its
``LatentDynamics``.

``forethought.models.control.policy`` registers the ``dmpc`` harness policy (imported by
``forethought eval``).
"""

from forethought.models.control.objectives import (
    KeepOut,
    Objective,
    PushBlocksObjective,
    ReacherObjective,
    TaskObjective,
)
from forethought.models.control.oracle import OracleDynamics
from forethought.models.control.planners import CEMPlanner, MPPIPlanner, Planner, PlannerConfig, SSRPlanner

__all__ = ["CEMPlanner", "KeepOut", "MPPIPlanner", "Objective", "OracleDynamics", "Planner", "PlannerConfig",
           "PushBlocksObjective", "ReacherObjective", "SSRPlanner", "TaskObjective"]
