"""Latent planning (CEM, MPPI), the surprise monitor and the probe, on a world model trained in the test.

The toy world is a 2-D point: ``s' = s + STEP * a`` with ``a`` in [-1, 1]^2. A tiny world model
learns it in a few seconds through the shared trainer; then planning toward a goal observation
must beat random actions, and a teleport must be the most surprising step. The shipped PushBlocks
model is checked in ``test_world_model_pretrained.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.models.control import CEMPlanner, MPPIPlanner, PlannerConfig
from forethought.models.evaluation import PolicySpec, evaluate
from forethought.models.training import TrainConfig, train
from forethought.models.world_model import LatentWorldModel, WorldModelConfig
from forethought.models.world_model.action_sampler import PUSHBLOCKS_STEP_QUANTILES, WaypointSampler
from forethought.models.world_model.eval_policy import WAYPOINT_PARAM_BOX, LatentPlannerEvalPolicy
from forethought.models.world_model.latent_dynamics import LatentDynamics, LatentEnsembleDynamics
from forethought.models.control.objectives import PUSH_OFFSET, SHAPING_WEIGHT
from forethought.models.world_model.latent_objectives import (BlockGoalObjective, GoalObjective, ProbeObjective,
                                                               goal_objective)
from forethought.models.world_model.latent_planner import LatentCEM, LatentMPPI, LatentPlanPolicy
from forethought.models.world_model.probe import LinearProbe
from forethought.models.world_model.surprise import SurpriseMonitor, rollout_spread, surprise_trace
from forethought.sim import scene

STEP = 0.04

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def point_states(s0: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """States ``[..., T + 1, 2]`` of the toy world from ``s0[..., 2]`` and ``actions[..., T, 2]``."""
    return np.concatenate([s0[..., None, :], s0[..., None, :] + STEP * np.cumsum(actions, axis=-2)], axis=-2)


@pytest.fixture(scope="module")
def point_model(tmp_path_factory: pytest.TempPathFactory) -> LatentWorldModel:
    torch.manual_seed(0)
    config = WorldModelConfig(obs_dim=2, action_dim=2, action_low=(-1, -1), action_high=(1, 1), embed_dim=16,
                              encoder_hidden=64, projector_hidden=64, predictor_hidden=64, predictor_blocks=2,
                              action_embed_dim=32, sigreg_slices=64, predictor_dropout=0.0)
    model = LatentWorldModel(config)
    fit_rng = np.random.default_rng(1)
    model.processor.fit(fit_rng.uniform(-1, 1, (4096, 2)))
    T, fs = config.num_frames, config.frameskip

    def sample_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
        s0 = rng.uniform(-0.8, 0.8, (128, 2))
        a = rng.uniform(-1, 1, (128, (T - 1) * fs, 2))
        states = point_states(s0, a)[:, ::fs]  # [B, T, 2]
        return {"obs": torch.tensor(states, dtype=torch.float32),
                "actions": torch.tensor(a, dtype=torch.float32).reshape(128, T - 1, fs, 2)}

    train_config = TrainConfig(steps=200, batch_size=128, lr=3e-3, warmup_steps=20, ema=False, checkpoint_every=200,
                               log_every=50)
    out = tmp_path_factory.mktemp("point")
    train(model, sample_batch, train_config, out, {"model": "world-model", "toy": "point"})
    return model.eval()


def run_plans(policy_actions, trials: int = 8) -> float:
    """Mean final distance to the goal over ``trials`` start/goal pairs."""
    rng = np.random.default_rng(123)
    dists = []
    for _ in range(trials):
        s0 = rng.uniform(-0.4, 0.4, 2)
        angle = rng.uniform(0, 2 * np.pi)
        goal = s0 + 0.5 * np.array([np.cos(angle), np.sin(angle)])
        actions = policy_actions(s0.astype(np.float32), goal.astype(np.float32), rng)
        dists.append(np.linalg.norm(point_states(s0, actions)[-1] - goal))
    return float(np.mean(dists))


@pytest.mark.parametrize("planner_cls", [LatentCEM, LatentMPPI])
def test_latent_planner_beats_random_on_a_reach(point_model: LatentWorldModel, planner_cls: type) -> None:
    planner = planner_cls(point_model, samples=100, elites=10, iterations=6, seed=0)
    planned = run_plans(lambda s0, goal, rng: planner.plan(s0, goal=goal))
    random = run_plans(lambda s0, goal, rng: rng.uniform(-1, 1, (25, 2)))
    assert planned < 0.35 * random and planned < 0.15, (planned, random)


@pytest.mark.parametrize("planner_cls", [LatentCEM, LatentMPPI])
def test_latent_planners_are_control_planners_over_latent_dynamics(point_model: LatentWorldModel,
                                                                    planner_cls: type) -> None:
    """LatentCEM/LatentMPPI plan exactly as CEMPlanner/MPPIPlanner configured as LeWM, over
    ``LatentDynamics`` in normalised block space, scored by ``GoalObjective``."""
    obs, goal = np.zeros(2, np.float32), np.array([0.3, -0.2], np.float32)
    latent = planner_cls(point_model, samples=40, elites=4, iterations=3, seed=5)
    config = PlannerConfig(samples=40, elites=4, iterations=3, horizon=5, init_std=1.0, min_std=0.05,
                           carry_elites=False, returns="mean", warm_start=False)
    dynamics, box = LatentDynamics(point_model, horizon=5), np.ones(point_model.config.block_dim, np.float32)
    search = (CEMPlanner(dynamics, -box, box, config) if planner_cls is LatentCEM
              else MPPIPlanner(None, dynamics, -box, box, config))
    assert type(latent.planner) is type(search)
    search.reset(seed=5)
    with torch.inference_mode():
        blocks = search.plan(dynamics.start(obs), GoalObjective.from_observation(point_model, goal))  # [5, 10]
        want = point_model.processor.unnormalize_actions(torch.from_numpy(blocks).reshape(25, 2)).numpy()
    np.testing.assert_array_equal(latent.plan(obs, goal=goal), want)
    assert search.evaluations == 40 * 3


def test_plan_is_in_env_units_and_reproducible(point_model: LatentWorldModel) -> None:
    obs, goal = np.zeros(2, np.float32), np.full(2, 0.3, np.float32)
    a = LatentCEM(point_model, samples=50, elites=5, iterations=3, seed=4).plan(obs, goal=goal)
    b = LatentCEM(point_model, samples=50, elites=5, iterations=3, seed=4).plan(obs, goal=goal)
    assert a.shape == (25, 2) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.all(np.abs(a) <= 1.0)


def test_waypoint_plan_was_evaluated_and_starts_at_the_anchor(point_model: LatentWorldModel) -> None:
    """With the waypoint sampler, the returned chunk is one the model scored (not an unevaluated refit mean),
    it starts one data-sized step from the anchor, and a non-PushBlocks model must be given the anchor."""
    sampler = WaypointSampler(PUSHBLOCKS_STEP_QUANTILES, point_model.config.frameskip, (-1, -1), (1, 1))
    planner = LatentCEM(point_model, samples=40, elites=4, iterations=3, sampler=sampler)
    seen: list[torch.Tensor] = []
    rollout = planner.latent.rollout
    planner.latent.rollout = lambda state, blocks: (seen.append(blocks.clone()), rollout(state, blocks))[1]
    obs, goal, anchor = np.zeros(2, np.float32), np.full(2, 0.3, np.float32), np.array([0.1, -0.2], np.float32)
    plan = planner.plan(obs, goal=goal, anchor=anchor)
    assert plan.shape == (25, 2) and len(seen) == 3
    blocks = point_model.action_blocks(torch.from_numpy(plan)[None])
    assert min(float((s - blocks).abs().amax(dim=(1, 2)).min()) for s in seen) < 1e-6
    assert np.all(np.abs(plan[0] - anchor) <= np.abs(np.asarray(PUSHBLOCKS_STEP_QUANTILES)).max(axis=1) + 1e-6)
    with pytest.raises(ValueError, match="anchor"):
        planner.plan(obs, goal=goal)
    with pytest.raises(ValueError, match="proposals"):
        planner.plan(obs, goal=goal, anchor=anchor, proposals=np.zeros((1, 25, 2), np.float32))


@pytest.mark.parametrize("warm", [False, True])
def test_warm_start_begins_at_the_previous_mean_shifted(point_model: LatentWorldModel, warm: bool) -> None:
    """With ``warm_start``, the second plan's first candidate (row 0: the search mean) is the first plan's
    final mean shifted by ``shift_blocks``, the last block repeated; without it, the prior's centre;
    ``reset`` drops it."""
    planner = LatentCEM(point_model, samples=20, elites=4, iterations=2, warm_start=warm, shift_blocks=2)
    seen: list[torch.Tensor] = []
    rollout = planner.latent.rollout
    planner.latent.rollout = lambda state, blocks: (seen.append(blocks.clone()), rollout(state, blocks))[1]
    obs, goal = np.zeros(2, np.float32), np.full(2, 0.3, np.float32)
    planner.plan(obs, goal=goal)
    last_mean = planner.planner._warm
    planner.plan(obs, goal=goal)
    first = seen[2][0]  # [K, Bd]: normalised blocks (the box is [-1, 1])
    if warm:
        assert last_mean is not None
        torch.testing.assert_close(first, torch.cat([last_mean[2:], last_mean[-1:].expand(2, -1)]))
        assert float(last_mean.abs().max()) > 0.05  # the shift is not a zero mean in disguise
    else:
        assert last_mean is None and bool((first == 0).all())
    planner.reset(0)
    planner.plan(obs, goal=goal)
    assert bool((seen[4][0] == 0).all())


def test_carried_plan_is_a_candidate_of_the_next_search(point_model: LatentWorldModel) -> None:
    """With ``carry_plan``, every round of the next plan scores the chosen parameters shifted by
    ``shift_blocks`` (freed blocks hold, ``p = 0``) at row 1; ``reset`` drops them; the box sampler refuses it."""
    sampler = WaypointSampler(PUSHBLOCKS_STEP_QUANTILES, point_model.config.frameskip, (-1, -1), (1, 1))
    planner = LatentCEM(point_model, samples=20, elites=4, iterations=2, sampler=sampler, carry_plan=True)
    seen: list[torch.Tensor] = []
    rollout = planner.dynamics.rollout
    planner.dynamics.rollout = lambda state, params: (seen.append(params.clone()), rollout(state, params))[1]
    obs, goal, anchor = np.zeros(2, np.float32), np.full(2, 0.3, np.float32), np.array([0.1, -0.2], np.float32)
    planner.plan(obs, goal=goal, anchor=anchor)
    chosen = planner._last_params
    assert chosen is not None and len(seen) == 2 and float(chosen.abs().max()) > 0.1
    planner.plan(obs, goal=goal, anchor=anchor)
    carried = torch.cat([chosen[1:], torch.zeros_like(chosen[:1])])
    for params in seen[2:4]:
        torch.testing.assert_close(params[1], carried)
    planner.reset(0)
    assert planner._last_params is None
    with pytest.raises(ValueError, match="carry_plan"):
        LatentCEM(point_model, carry_plan=True)


def test_proposals_are_candidates(point_model: LatentWorldModel) -> None:
    """With two samples (the mean, then one proposal) and one elite, a proposal better than the
    zero mean is returned exactly."""
    proposal = np.tile(np.array([0.8, 0.8], np.float32), (1, 25, 1))
    planner = LatentCEM(point_model, samples=2, elites=1, iterations=1)
    plan = planner.plan(np.zeros(2, np.float32), goal=np.full(2, 0.8, np.float32), proposals=proposal)
    assert np.allclose(plan, proposal[0], atol=1e-6)
    with pytest.raises(ValueError, match="proposals must have shape"):
        planner.plan(np.zeros(2, np.float32), goal=np.zeros(2, np.float32), proposals=np.zeros((1, 10, 2)))


def test_planner_argument_errors(point_model: LatentWorldModel) -> None:
    with pytest.raises(ValueError, match="elites"):
        LatentCEM(point_model, samples=10, elites=20)
    planner = LatentCEM(point_model, samples=10, elites=2, iterations=1)
    with pytest.raises(ValueError, match="exactly one"):
        planner.plan(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        planner.plan(np.array([np.nan, 0], np.float32), goal=np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="goal must have shape"):
        planner.plan(np.zeros(2, np.float32), goal=np.zeros(3, np.float32))


def test_policy_replans_every_block(point_model: LatentWorldModel) -> None:
    planner = LatentCEM(point_model, samples=60, elites=6, iterations=4, terminal_only=False)
    policy = LatentPlanPolicy(planner, execute_blocks=1)
    policy.set_goal_observation(np.array([0.4, -0.3], np.float32))
    s = np.zeros(2)
    for _ in range(30):
        s = s + STEP * policy.act(s.astype(np.float32))
    assert np.linalg.norm(s - [0.4, -0.3]) < 0.1
    with pytest.raises(ValueError, match="goal observation"):
        LatentPlanPolicy(planner).act(np.zeros(2, np.float32), None)


def test_policy_drives_any_goal_planner(point_model: LatentWorldModel) -> None:
    """A goal-observation planner needs only ``horizon``, ``model`` and ``plan`` (the bench's perfect-model
    planner has no latent dynamics): the policy executes its plans block by block."""
    class Constant:
        horizon, model = 2, point_model

        def plan(self, obs: np.ndarray, goal: np.ndarray, anchor: object = None) -> np.ndarray:
            return np.tile(np.sign(goal - obs), (self.horizon * point_model.config.frameskip, 1)).astype(np.float32)

    policy = LatentPlanPolicy(Constant(), execute_blocks=1)
    policy.set_goal_observation(np.array([0.4, -0.3], np.float32))
    assert policy.act(np.zeros(2, np.float32)).tolist() == [1.0, -1.0]


def point_episode(teleport_at: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    actions = rng.uniform(-1, 1, (40, 2))
    states = point_states(np.zeros(2), actions)
    if teleport_at is not None:
        states[teleport_at:] += np.array([0.5, -0.4])
    return states.astype(np.float32), actions.astype(np.float32)


def test_surprise_ranks_the_teleport_step_first(point_model: LatentWorldModel) -> None:
    states, actions = point_episode(teleport_at=20)
    s = surprise_trace(point_model, states, actions)
    assert np.isnan(s[:5]).all() and np.isfinite(s[5:]).all()
    normal = np.r_[s[5:20], s[36:]]  # steps whose predictions do not straddle the jump
    assert s[20] > 5 * normal.max()


def test_online_monitor_matches_the_offline_trace(point_model: LatentWorldModel) -> None:
    states, actions = point_episode(teleport_at=None)
    trace = surprise_trace(point_model, states, actions)
    monitor = SurpriseMonitor(point_model)
    monitor.reset(states[0])
    online = [monitor.step(a, s) for a, s in zip(actions, states[1:])]
    assert online[:4] == [None] * 4
    np.testing.assert_allclose(np.array(online[4:], float), trace[5:], rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="before reset"):
        SurpriseMonitor(point_model).step(actions[0], states[1])


@pytest.mark.parametrize("horizon,window", [(3, 1), (2, 6)])
def test_open_loop_and_windowed_monitor_match_the_offline_trace(point_model: LatentWorldModel, horizon: int,
                                                               window: int) -> None:
    states, actions = point_episode(teleport_at=20)
    trace = surprise_trace(point_model, states, actions, horizon=horizon, window=window)
    first = horizon * point_model.config.frameskip
    assert np.isnan(trace[:first]).all() and np.isfinite(trace[first:]).all()
    monitor = SurpriseMonitor(point_model, horizon=horizon, window=window)
    monitor.reset(states[0])
    online = [monitor.step(a, s) for a, s in zip(actions, states[1:])]
    assert online[:first - 1] == [None] * (first - 1)
    np.testing.assert_allclose(np.array(online[first - 1:], float), trace[first:], rtol=1e-4, atol=1e-7)


def test_open_loop_surprise_follows_its_definition(point_model: LatentWorldModel) -> None:
    """Horizon k at step t: roll the observed history ending at t - k * frameskip forward k blocks
    with the actions taken, compare with the observed embedding; a window averages the last values."""
    states, actions = point_episode(teleport_at=None)
    fs, H = point_model.config.frameskip, point_model.config.history
    k, t = 2, 27
    s = t - k * fs
    with torch.inference_mode():
        z = point_model.encode(torch.from_numpy(states))
        blocks = point_model.processor.normalize_actions(torch.from_numpy(actions))
        hist = z[[s - fs * j for j in range(min(H, s // fs + 1) - 1, -1, -1)]].unsqueeze(0)
        pred = point_model.rollout_latent(hist, blocks[s:t].reshape(1, k, -1))[0, -1]
    trace = surprise_trace(point_model, states, actions, horizon=k)
    assert trace[t] == pytest.approx(float((pred - z[t]).square().mean()), rel=1e-5)
    windowed = surprise_trace(point_model, states, actions, horizon=k, window=4)
    assert windowed[t] == pytest.approx(float(np.mean(trace[t - 3:t + 1])), rel=1e-6)
    assert windowed[k * fs] == pytest.approx(trace[k * fs])  # only one value exists yet


def test_longer_horizon_keeps_flagging_a_teleport(point_model: LatentWorldModel) -> None:
    """Every open-loop prediction that straddles the jump scores above every clean step."""
    states, actions = point_episode(teleport_at=20)
    k, fs = 3, point_model.config.frameskip
    s = surprise_trace(point_model, states, actions, horizon=k)
    straddle, clean = s[20:20 + k * fs], np.r_[s[k * fs:20], s[20 + (k + point_model.config.history) * fs:]]
    assert straddle.min() > clean.max()


def test_surprise_options_are_validated(point_model: LatentWorldModel) -> None:
    states, actions = point_episode(teleport_at=None)
    with pytest.raises(ValueError, match="horizon"):
        surprise_trace(point_model, states, actions, horizon=0)
    with pytest.raises(ValueError, match="window"):
        SurpriseMonitor(point_model, window=1.5)


def test_rollout_spread_grows_with_the_horizon(point_model: LatentWorldModel) -> None:
    z = point_model.encode(torch.zeros(3, 1, 2))
    blocks = torch.zeros(3, 4, 10)
    spread = rollout_spread(point_model, z, blocks, num_rollouts=16, sigma=0.05,
                            generator=torch.Generator().manual_seed(0))
    assert spread.shape == (3, 4) and bool((spread[:, -1] > spread[:, 0]).all())


def test_probe_reads_the_state_back(point_model: LatentWorldModel, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    states = torch.tensor(rng.uniform(-0.8, 0.8, (2000, 2)), dtype=torch.float32)
    probe = LinearProbe.fit(point_model, states, states)
    assert bool((probe.r2(point_model, states, states) > 0.9).all())
    probe.save(tmp_path)
    loaded = LinearProbe.load(tmp_path, embed_dim=16, state_dim=2)
    assert torch.equal(loaded.weight, probe.weight)
    with pytest.raises(ValueError, match="maps"):
        LinearProbe.load(tmp_path, embed_dim=8, state_dim=2)


def test_eval_policy_plans_with_the_waypoint_sampler_and_reports_replan_times() -> None:
    """``forethought eval --policy latent-cem --policy-option sampler=waypoint``: the plans start at the pusher,
    move like the data, and the harness reports the replan latency."""
    model_dir = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "wm-pushblocks-state"
    spec = PolicySpec(model=model_dir, env_id="forethought/PushBlocks-v0", observation_dim=16, action_dim=2,
                      options={"samples": "32", "elites": "4", "iterations": "2", "sampler": "waypoint"})
    policy = LatentPlannerEvalPolicy(spec)
    assert policy.policy.planner.sampler is not None
    report = evaluate(policy, spec.env_id, [0], policy_name="latent-cem", env_kwargs={"n_blocks": 1},
                      task={"skill": "reach", "target": [0.1, 0.1]})
    assert report.replans == len(policy.replan_ms) > 0 and report.replan_ms_median > 0
    obs = np.zeros(16, np.float32)
    obs[scene.PUSHER_POS] = [0.05, -0.05]
    policy.reset({"skill": "reach", "target": [0.1, 0.1]}, 0)
    first = policy.act(obs)
    assert np.all(np.abs(first - obs[scene.PUSHER_POS]) <= 0.19)  # one step from the pusher (largest data step 0.18)
    with pytest.raises(ValueError, match="sampler='grid'"):
        LatentPlannerEvalPolicy(PolicySpec(**{**vars(spec), "options": {"sampler": "grid"}}))


def test_an_ensemble_of_one_model_twice_plans_as_the_model_alone(point_model: LatentWorldModel) -> None:
    """Identical members score every candidate as one model does (mean of equal costs, zero spread), so
    the same noise gives the same plan; a goal observation is refused (each member has its own latent space)."""
    s0, goal = np.array([0.1, -0.2], np.float32), np.array([0.4, 0.2], np.float32)
    objective = GoalObjective.from_observation(point_model, goal)
    alone = LatentCEM(point_model, samples=40, elites=4, iterations=3, seed=3)
    twice = LatentCEM(point_model, samples=40, elites=4, iterations=3, seed=3, ensemble=[point_model])
    assert isinstance(twice.latent, LatentEnsembleDynamics) and len(twice.latent.members) == 2
    objective.beta = 1.0
    np.testing.assert_array_equal(twice.plan(s0, objective=objective), alone.plan(s0, objective=objective))
    with pytest.raises(ValueError, match="one model"):
        twice.plan(s0, goal=goal)
    probe = LinearProbe(torch.zeros(2, 16), torch.zeros(2))
    with pytest.raises(ValueError, match="one probe per member"):
        LatentPlanPolicy(twice, probe)


def test_eval_policy_rolls_an_ensemble_out_and_weighs_its_spread() -> None:
    """``--policy-option ensemble=DIR beta=B``: two members, each with its probe; ``beta`` alone is refused."""
    model_dir = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "wm-pushblocks-state"
    spec = PolicySpec(model=model_dir, env_id="forethought/PushBlocks-v0", observation_dim=16, action_dim=2,
                      options={"samples": "16", "ensemble": str(model_dir), "beta": "0.5", "margin": "0.03"})
    policy = LatentPlannerEvalPolicy(spec)
    assert len(policy.policy.planner.latent.members) == 2 and len(policy.policy.probe) == 2
    assert (policy.policy.beta, policy.policy.margin) == (0.5, 0.03)
    obs = np.zeros(16, np.float32)
    obs[scene.PUSHER_POS] = [0.05, -0.05]
    policy.reset({"skill": "reach", "target": [0.1, 0.1]}, 0)
    planner, seen = policy.policy.planner, []
    plan = planner.plan
    planner.plan = lambda obs, objective: seen.append(objective) or plan(obs, objective=objective)
    assert np.all(np.abs(policy.act(obs) - obs[scene.PUSHER_POS]) <= 0.19)
    (objective,) = seen  # the plan step's objective, built from the options
    assert isinstance(objective, ProbeObjective) and len(objective.probes) == 2
    assert (objective.beta, objective.task.margin) == (0.5, 0.03)
    with pytest.raises(ValueError, match="ensemble=DIR"):
        LatentPlannerEvalPolicy(PolicySpec(**{**vars(spec), "options": {"beta": "0.5"}}))


@pytest.mark.parametrize("options, budget", [
    ({}, (200, 20, 2, 4)),  # WAYPOINT_BUDGET
    ({"sampler": "box"}, (300, 30, 10, 5)),  # LeWM's
    ({"samples": "50"}, (50, 5, 2, 4)),  # elites follow samples
    ({"samples": "50", "elites": "7", "iterations": "3", "horizon": "5"}, (50, 7, 3, 5)),
])
def test_eval_policy_budget_defaults(options: dict[str, str], budget: tuple[int, int, int, int]) -> None:
    model_dir = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "wm-pushblocks-state"
    spec = PolicySpec(model=model_dir, env_id="forethought/PushBlocks-v0", observation_dim=16, action_dim=2,
                      options=options)
    planner = LatentPlannerEvalPolicy(spec).policy.planner
    c = planner.planner.config
    assert (c.samples, c.elites, c.iterations, planner.horizon) == budget and not c.warm_start
    if planner.sampler is not None:  # the plan step's box, and the N(0, 1) prior over it
        assert planner.sampler.param_box == WAYPOINT_PARAM_BOX and c.init_std == pytest.approx(1 / WAYPOINT_PARAM_BOX)


def test_eval_policy_param_box_option() -> None:
    """``param_box`` widens the waypoint sampler's search box; it is refused with the box sampler."""
    model_dir = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "wm-pushblocks-state"
    spec = PolicySpec(model=model_dir, env_id="forethought/PushBlocks-v0", observation_dim=16, action_dim=2,
                      options={"param_box": "2.5"})
    planner = LatentPlannerEvalPolicy(spec).policy.planner
    assert planner.sampler.param_box == 2.5 and planner.planner.high[0] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="param_box"):
        LatentPlannerEvalPolicy(PolicySpec(**{**vars(spec), "options": {"param_box": "2", "sampler": "box"}}))


def test_block_goal_cost_is_the_probed_blocks_distance_to_the_goal() -> None:
    """``BlockGoalObjective`` with the identity probe (latent = task state): the summed distance (m) of the
    blocks present in the goal to their goal positions, on the final block or averaged; the pusher is free."""
    probe = LinearProbe(torch.eye(scene.OBS_DIM), torch.zeros(scene.OBS_DIM))
    goal = torch.zeros(scene.OBS_DIM)
    red, blue = scene.block_slice("red_block"), scene.block_slice("blue_block")
    goal[red] = torch.tensor([1.0, 0.10, 0.05, 0.0])
    goal[blue] = torch.tensor([1.0, -0.10, 0.00, 0.0])
    states = goal.repeat(3, 2, 1)  # [n = 3, K = 2, S]
    states[1, -1, red.start + 1] += 0.03  # red 3 cm off at the end
    states[2, 0, blue.start + 2] += 0.04  # blue 4 cm off at the first block only
    states[:, :, scene.PUSHER_POS] = 0.2  # the pusher's pose does not count
    terminal = BlockGoalObjective(probe, goal)
    torch.testing.assert_close(terminal.cost(states, None), torch.tensor([0.0, 0.03, 0.0]))
    torch.testing.assert_close(BlockGoalObjective(probe, goal, terminal_only=False).cost(states, None),
                               torch.tensor([0.0, 0.015, 0.02]))
    goal[red.start] = goal[blue.start] = 0.0
    with pytest.raises(ValueError, match="no block in the goal"):
        BlockGoalObjective(probe, goal)


def test_push_goal_cost_adds_the_pushing_position() -> None:
    """The ``"push"`` goal cost's shaping (identity probe): 0.3 x the pusher's distance, averaged over the
    blocks, to the point ``PUSH_OFFSET`` behind the block on the line from its goal; a pusher there
    costs nothing extra, one on the goal side costs more than one beside the block."""
    probe = LinearProbe(torch.eye(scene.OBS_DIM), torch.zeros(scene.OBS_DIM))
    red = scene.block_slice("red_block")
    goal = torch.zeros(scene.OBS_DIM)
    goal[red] = torch.tensor([1.0, 0.10, 0.0, 0.0])
    states = goal.repeat(3, 1, 1)  # [n = 3, K = 1, S]
    states[:, 0, red.start + 1] = 0.0  # red 10 cm short of its goal, along +x
    states[0, 0, scene.PUSHER_POS] = torch.tensor([-PUSH_OFFSET, 0.0])  # behind it
    states[1, 0, scene.PUSHER_POS] = torch.tensor([0.0, PUSH_OFFSET])  # beside it
    states[2, 0, scene.PUSHER_POS] = torch.tensor([PUSH_OFFSET, 0.0])  # between it and the goal
    plain = BlockGoalObjective(probe, goal).cost(states, None)
    shaped = BlockGoalObjective(probe, goal, shaping_weight=SHAPING_WEIGHT).cost(states, None)
    torch.testing.assert_close(plain, torch.full((3,), 0.10))
    want = 0.10 + SHAPING_WEIGHT * PUSH_OFFSET * torch.tensor([0.0, 2**0.5, 2.0])
    torch.testing.assert_close(shaped, want)


def test_goal_cost_options_are_validated(point_model: LatentWorldModel) -> None:
    goal = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="goal cost 'pixels'"):
        goal_objective(point_model, goal, "pixels")
    with pytest.raises(ValueError, match="probe"):
        goal_objective(point_model, goal, "blocks")
    with pytest.raises(ValueError, match="the push goal cost reads block positions through the probe"):
        goal_objective(point_model, goal, "push")
    with pytest.raises(ValueError, match="goal_cost"):
        LatentCEM(point_model, goal_cost="blocks")
