"""Scripted experts, one per env, behind one interface.

An expert acts from the observation and the active plan step alone, never from simulator
internals, so the same object drives the gymnasium env, the data collector and the ROS
``policy_controller`` node (``policy: expert``).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, Mapping

import numpy as np

from forethought.sim import PUSH_BLOCKS_ID, REACHER_ID, task_env_id

# env id -> "module:Class" of its expert (imported on demand); an env with another's tasks
# (``forethought.sim.SAME_TASKS_AS``) uses that env's expert
EXPERTS: dict[str, str] = {
    PUSH_BLOCKS_ID: "forethought.sim.expert_pushblocks:PushBlocksExpert",
    REACHER_ID: "forethought.sim.expert_reacher:ReacherExpert",
}


class Expert(ABC):
    """A scripted controller: ``act(obs, step) -> action[A]`` in env units, within the limits."""

    def reset(self) -> None:
        """Forget any internal state (call at episode start)."""

    @abstractmethod
    def act(self, obs: np.ndarray, step: Mapping[str, Any]) -> np.ndarray:
        """One action ``float32[A]`` for observation ``obs`` and plan step ``step``."""


def make_expert(env_id: str, **kwargs: Any) -> Expert:
    """Build the scripted expert registered for ``env_id`` (or for the env whose tasks it has)."""
    if task_env_id(env_id) not in EXPERTS:
        raise ValueError(f"no scripted expert for env {env_id!r}: experts exist for {sorted(EXPERTS)}")
    module, cls = EXPERTS[task_env_id(env_id)].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
