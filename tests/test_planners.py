"""Planners (SSR, MPPI, CEM), oracle dynamics and the ``dmpc`` harness policy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought.models import DiffusionProposer, MinMaxNormalizer, ProposerConfig, cli_eval
from forethought.models.proposer.configuration_proposer import PRESETS
from forethought.models.control import (
    CEMPlanner,
    MPPIPlanner,
    Objective,
    OracleDynamics,
    PlannerConfig,
    SSRPlanner,
    TaskObjective,
)
from forethought.models.control.planners import refit
from forethought.models.control.policy import DMPCPolicy
from forethought.models.dynamics.train_dynamics import build_dynamics_run
from forethought.models.evaluation import PolicySpec, evaluate
from forethought.sim.collect import collect

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOW, HIGH = (-1.0, -1.0), (1.0, 1.0)
GOAL = torch.tensor([0.3, -0.2])


class PositionDynamics:
    """Toy model: the state is where the last action put it (``states[1, n, F, 2] = actions``);
    records the largest action magnitude it was given."""

    horizon, n_obs_steps = 8, 1

    def __init__(self) -> None:
        self.max_abs = 0.0

    def rollout(self, state: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(actions, dtype=torch.float32)
        self.max_abs = max(self.max_abs, float(a.abs().max()))
        return a.unsqueeze(0)


class ToyObjective(TaskObjective):
    """Squared distance of the toy state to ``GOAL``, every step."""

    def distance(self, states: torch.Tensor) -> torch.Tensor:
        return (states - GOAL).square().sum(-1)

    def bodies(self, states: torch.Tensor) -> torch.Tensor:
        return states.unsqueeze(-2)


class ScriptedProposer:
    """Returns fixed chunks ``[n, F, A]`` (cycled to ``n``), whatever the observation."""

    def __init__(self, chunks: torch.Tensor) -> None:
        self.chunks = chunks

    def propose(self, obs_history, n, goal=None, generator=None, num_inference_steps=None) -> torch.Tensor:
        return self.chunks[torch.arange(n) % len(self.chunks)]


def history() -> np.ndarray:
    return np.zeros((1, 2), dtype=np.float32)


def test_ssr_returns_the_lowest_cost_candidate() -> None:
    offsets = torch.tensor([0.5, -0.4, 0.05, 0.2, -0.1])  # candidate i sits at GOAL + offset_i
    chunks = (GOAL + offsets[:, None, None]).expand(-1, 8, -1).clone()
    config = PlannerConfig(samples=5, iterations=0)
    planner = SSRPlanner(ScriptedProposer(chunks), PositionDynamics(), LOW, HIGH, config)
    chunk = planner.plan(history(), ToyObjective())
    np.testing.assert_array_equal(chunk, chunks[2].numpy())
    assert chunk.dtype == np.float32 and chunk.shape == (8, 2) and planner.evaluations == 5


def test_ssr_cuts_proposals_to_the_dynamics_horizon() -> None:
    chunks = GOAL.expand(3, 16, 2).clone()
    planner = SSRPlanner(ScriptedProposer(chunks), PositionDynamics(), LOW, HIGH, PlannerConfig(samples=3))
    assert planner.plan(history(), ToyObjective()).shape == (8, 2)


def test_goal_fraction_mixes_goal_conditioned_and_goal_free_proposals() -> None:
    calls: list[tuple[int, object]] = []

    class Recorder(ScriptedProposer):
        def propose(self, obs_history, n, goal=None, generator=None, num_inference_steps=None) -> torch.Tensor:
            calls.append((n, goal))
            return super().propose(obs_history, n, goal, generator, num_inference_steps)

    step = {"skill": "reach", "target": [0.3, -0.2]}
    planner = SSRPlanner(Recorder(GOAL.expand(1, 8, 2).clone()), PositionDynamics(), LOW, HIGH,
                         PlannerConfig(samples=8, goal_fraction=0.25))
    planner.plan(history(), ToyObjective(), goal=step)
    assert calls == [(2, step), (6, None)]


@pytest.mark.parametrize("kind", ["ssr", "mppi", "cem"])
def test_every_planner_clamps_to_the_action_limits(kind: str) -> None:
    wild = torch.randn(6, 8, 2, generator=torch.Generator().manual_seed(0)) * 5  # far outside [-1, 1]
    dynamics = PositionDynamics()
    config = PlannerConfig(samples=6, iterations=2, elites=3, init_std=50.0, min_std=1.0)
    low, high = (-0.5, -0.25), (0.5, 0.25)
    planner = (CEMPlanner(dynamics, low, high, config) if kind == "cem"
               else (SSRPlanner if kind == "ssr" else MPPIPlanner)(ScriptedProposer(wild), dynamics, low, high, config))
    planner.reset(seed=1)
    for _ in range(3):
        chunk = planner.plan(history(), ToyObjective())
        assert np.all(chunk >= np.float32(low)) and np.all(chunk <= np.float32(high))
    assert dynamics.max_abs <= 0.5 + 1e-6  # candidates are clamped before they are rolled out


def best_cost(planner, objective: Objective) -> float:
    chunk = torch.from_numpy(planner.plan(history(), objective))
    return float(objective.cost(chunk, chunk))


def test_cem_reduces_cost_on_a_quadratic() -> None:
    objective = ToyObjective()
    costs = []
    for iterations in (1, 3, 8):
        planner = CEMPlanner(PositionDynamics(), LOW, HIGH, PlannerConfig(samples=32, iterations=iterations, elites=4))
        planner.reset(seed=0)
        costs.append(best_cost(planner, objective))
    assert costs[0] > costs[1] > costs[2]
    assert costs[2] < 0.25 * costs[0]


def test_mppi_refines_the_proposals() -> None:
    rough = GOAL + torch.randn(16, 8, 2, generator=torch.Generator().manual_seed(0)) * 0.3
    objective = ToyObjective()
    ssr = SSRPlanner(ScriptedProposer(rough), PositionDynamics(), LOW, HIGH, PlannerConfig(samples=16))
    mppi = MPPIPlanner(ScriptedProposer(rough), PositionDynamics(), LOW, HIGH,
                       PlannerConfig(samples=16, iterations=4, elites=4))
    mppi.reset(seed=0)
    assert best_cost(mppi, objective) < best_cost(ssr, objective)
    assert mppi.evaluations == 16 * 5


def test_refit_is_the_elite_mean_or_the_mppi_weighted_mean() -> None:
    elites = torch.tensor([[[0.0]], [[0.5]], [[1.0]]])  # [E=3, F=1, A=1]
    mean, std = refit(elites, torch.tensor([0.0, 1.0, 2.0]), min_std=0.0)
    assert torch.allclose(mean, elites.mean(0)) and torch.allclose(std, elites.std(0, unbiased=False))
    assert refit(elites, torch.tensor([0.0, 1.0, 2.0]), min_std=0.9)[1].item() == pytest.approx(0.9)
    # MPPI: weights softmax(-(c - c_min) / (temperature * cost range)); an infinite cost weighs nothing
    mean, _ = refit(elites, torch.tensor([0.0, 1.0, float("inf")]), min_std=0.0, temperature=0.5)
    w = torch.softmax(torch.tensor([0.0, -2.0]), dim=0)
    assert mean.item() == pytest.approx(float(w[1] * 0.5))
    cold, _ = refit(elites, torch.tensor([0.0, 1.0, 2.0]), min_std=0.0, temperature=1e-3)
    assert cold.item() == pytest.approx(0.0, abs=1e-6)  # a cold MPPI refit is the best elite


def test_mppi_without_a_proposer_searches_from_the_prior() -> None:
    costs = []
    for iterations in (1, 8):
        config = PlannerConfig(samples=32, iterations=iterations, elites=4)
        mppi = MPPIPlanner(None, PositionDynamics(), LOW, HIGH, config)
        mppi.reset(seed=0)
        costs.append(best_cost(mppi, ToyObjective()))
        assert mppi.evaluations == 32 * iterations
    assert costs[1] < 0.25 * costs[0]
    with pytest.raises(ValueError, match="iterations >= 1"):
        MPPIPlanner(None, PositionDynamics(), LOW, HIGH, PlannerConfig(iterations=0))


def test_latent_configuration_returns_the_mean_and_keeps_fixed_candidates() -> None:
    """LeWM's settings: a fixed candidate (row 1 of every round) that beats the mean is the only
    elite, so the refit mean, which ``returns="mean"`` gives back, is that candidate."""
    config = PlannerConfig(samples=2, elites=1, iterations=1, carry_elites=False, returns="mean", warm_start=False)
    planner = CEMPlanner(PositionDynamics(), LOW, HIGH, config)
    fixed = GOAL.expand(1, 8, 2).clone()
    np.testing.assert_allclose(planner.plan(history(), ToyObjective(), fixed=fixed), fixed[0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="fixed candidates"):
        planner.plan(history(), ToyObjective(), fixed=GOAL.expand(2, 8, 2).clone())  # m must be < samples
    with pytest.raises(ValueError, match="returns"):
        PlannerConfig(returns="worst")


@pytest.mark.parametrize("warm_start", [True, False])
def test_warm_start_shifts_the_previous_mean_or_restarts(warm_start: bool) -> None:
    """Without a warm start, a second plan is what a fresh planner plans from the same noise."""
    config = PlannerConfig(samples=8, iterations=2, elites=2, action_steps=4, warm_start=warm_start)
    planner, fresh = (CEMPlanner(PositionDynamics(), LOW, HIGH, config) for _ in range(2))
    planner.reset(seed=0)
    planner.plan(history(), ToyObjective())
    fresh.generator.set_state(planner.generator.get_state())
    same = np.array_equal(planner.plan(history(), ToyObjective()), fresh.plan(history(), ToyObjective()))
    assert same != warm_start


def test_planner_refuses_nan_observations() -> None:
    planner = CEMPlanner(PositionDynamics(), LOW, HIGH, PlannerConfig(samples=4, iterations=1, elites=2))
    with pytest.raises(ValueError, match="NaN"):
        planner.plan(np.array([[np.nan, 0.0]], dtype=np.float32), ToyObjective())
    with pytest.raises(ValueError, match="elites|samples"):
        PlannerConfig(samples=0)


@pytest.mark.parametrize("env_id, kwargs",
                         [("forethought/PushBlocks-v0", {"n_blocks": 2}), ("forethought/Reacher-v5", {})])
def test_oracle_reproduces_the_env_exactly(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    for _ in range(3):  # move somewhere first, so velocities and contacts are non-trivial
        obs = env.step(rng.uniform(low, high))[0]
    oracle = OracleDynamics(horizon=6)
    oracle.bind(env)
    chunks = rng.uniform(low, high, size=(3, 6, len(low))).astype(np.float32)
    predicted = oracle.rollout(obs, chunks)
    assert predicted.shape == (1, 3, 6, len(obs))
    np.testing.assert_array_equal(env.unwrapped._get_obs(), obs)  # the live env did not move
    for t, a in enumerate(chunks[1]):
        np.testing.assert_array_equal(predicted[0, 1, t].numpy(), env.step(a)[0].astype(np.float32))
    with pytest.raises(ValueError, match="current observation"):
        oracle.rollout(obs, chunks)  # the env has moved on
    env.close()


def tiny_proposer(directory: Path, obs_dim: int, low: float, high: float) -> Path:
    config = ProposerConfig(**{**PRESETS["tiny"].model, "horizon": 8, "n_action_steps": 4}, obs_dim=obs_dim,
                            action_dim=2, action_low=(low, low), action_high=(high, high))
    rng = np.random.default_rng(0)
    norm = MinMaxNormalizer.fit(rng.normal(size=(64, obs_dim)), rng.uniform(low, high, size=(64, 2)))
    torch.manual_seed(0)
    DiffusionProposer(config, norm).save_pretrained(directory)
    return directory


def tiny_dynamics(directory: Path) -> Path:
    """An untrained ``tiny`` PushBlocks ensemble whose normaliser is fitted on four short episodes."""
    data = collect("forethought/PushBlocks-v0", 4, 0.1, 0.5, 0, directory / "pb.parquet", progress=False, max_steps=20)
    model, *_ = build_dynamics_run(data, "tiny", ["expert", "play"], seed=0)
    model.save_pretrained(directory / "model")
    return directory / "model"


def eval_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_eval.add_arguments(parser)
    return cli_eval.run(parser.parse_args([*argv, "--threads", "1"]))


def test_dmpc_oracle_episode_runs_in_the_harness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proposer = tiny_proposer(tmp_path / "proposer", 10, -1.0, 1.0)
    argv = ["--policy", "dmpc", "--planner", "oracle", "--model", str(proposer), "--env", "forethought/Reacher-v5",
            "--seeds", "0", "--inference-steps", "2", "--action-steps", "8", "--policy-option", "samples=4", "--json"]
    assert eval_cli(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["episodes"] == 1 and report["per_episode"][0]["steps"] == 50
    assert report["replans"] == 7 and report["replan_ms_p90"] >= report["replan_ms_median"] > 0


def test_dmpc_with_learned_dynamics_in_the_harness(tmp_path: Path) -> None:
    proposer = tiny_proposer(tmp_path / "proposer", 16, -0.27, 0.27)
    dynamics = tiny_dynamics(tmp_path)
    env_id = "forethought/PushBlocks-v0"
    for planner in ("ssr", "mppi", "cem"):
        spec = PolicySpec(model=proposer, env_id=env_id, observation_dim=16, action_dim=2, num_inference_steps=2,
                          action_steps=4, planner=planner, dynamics=str(dynamics),
                          options={"samples": "4", "iterations": "1", "elites": "2", "keepout": "circle:0,0,0.05"})
        policy = DMPCPolicy(spec)
        report = evaluate(policy, env_id, [0], policy_name="dmpc", env_kwargs={"n_blocks": 1},
                          task={"skill": "reach", "target": [0.1, 0.1]})
        assert report.episodes == 1 and report.replans >= 1
        assert policy.objective is not None and policy.objective.keepouts


def test_dmpc_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proposer = tiny_proposer(tmp_path / "proposer", 10, -1.0, 1.0)
    base = ["--policy", "dmpc", "--model", str(proposer), "--env", "forethought/Reacher-v5", "--seeds", "0"]
    for extra, message in ((["--planner", "ssr"], "--dynamics"),
                           (["--planner", "oracle", "--policy-option", "bogus=1"], "unknown --policy-option"),
                           (["--planner", "oracle", "--policy-option", "samples=many"], "must be a int"),
                           (["--planner", "oracle", "--policy-option", "keepout=circle:0,0"], "keep-out")):
        assert eval_cli(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert eval_cli(["--policy", "expert", "--planner", "ssr", "--env", "forethought/Reacher-v5", "--seeds", "0"]) == 2
    spec = PolicySpec(model=proposer, env_id="forethought/Reacher-v5", observation_dim=10, action_dim=2,
                      planner="oracle", num_inference_steps=2, options={"samples": "2"})
    policy = DMPCPolicy(spec)
    policy.reset({"skill": "reach", "target": [0.1, 0.0]}, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        policy.act(np.full(10, np.nan, dtype=np.float32))


PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"


@pytest.mark.slow
@pytest.mark.skipif(not (PRETRAINED / "dynamics-pushblocks").is_dir(), reason="shipped dynamics weights not present")
def test_dmpc_with_shipped_weights_solves_easy_pushes() -> None:
    """Closed loop, shipped proposer and dynamics: three easy 1-block push seeds (solved in 15-25
    steps when measured) must succeed within the episode's 200 steps."""
    env_id = "forethought/PushBlocks-v0"
    spec = PolicySpec(model=PRETRAINED / "proposer-pushblocks", env_id=env_id, observation_dim=16, action_dim=2,
                      num_inference_steps=5, action_steps=8, planner="ssr",
                      dynamics=str(PRETRAINED / "dynamics-pushblocks"), options={"samples": "32"})
    report = evaluate(DMPCPolicy(spec), env_id, [4, 9, 11], policy_name="dmpc", env_kwargs={"n_blocks": 1},
                      skills=["push"])
    assert report.successes == 3, [(r.seed, r.steps) for r in report.per_episode]
