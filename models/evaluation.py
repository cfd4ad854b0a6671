"""The shared closed-loop evaluation harness: run a policy in a gymnasium env over fixed seeds.

Every policy of the project is evaluated the same way: one episode per seed, the task drawn
from the seed (or given), success read from ``info["is_success"]`` at the episode's last step,
the success rate reported with a Wilson 95% interval, plus the mean return and the policy's
wall time per step. Policies plug in through ``POLICIES`` (``register_policy``); the D-MPC
planner adds ``dmpc`` there.

PushBlocks episodes also report the disturbance: per episode, the largest displacement of a block
the active step does not name, from where it was when that step was issued
(``sim.plan_progress.disturbance``); the report gives its median and p90. Given a multi-step
``plan``, an episode runs the whole plan with ``sim.plan_progress.PlanProgress`` (the executive's
definition): the policy is reset with each issued step, a broken earlier step is re-issued up to
``max_reissues`` times, each issue may take ``step_limit`` env steps, and the episode succeeds when
every step holds at the end; the report adds ``plan_success_rate`` with its Wilson interval.

Example::

    forethought eval --policy proposer --model models/pretrained/proposer-pushblocks \\
        --env forethought/PushBlocks-v0 --env-kwargs '{"n_blocks": 1}' --skill push --seeds 0-49 --json
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import gymnasium as gym
import numpy as np

import forethought.sim.envs  # noqa: F401  (registers the forethought/* env ids)
from forethought.files import atomic_path
from forethought.sim import PUSH_BLOCKS_ID, scene, task_env_id
from forethought.sim.plan_progress import DONE, DWELL_S, PlanProgress, disturbance
from forethought.sim.push_blocks import sample_task
from forethought.sim.scene import BLOCK_NAMES


class Policy(Protocol):
    """What the harness drives: ``reset`` once per episode, then ``act`` once per env step.

    Optional: ``bind_env(env)`` is called once with the env the harness steps (the oracle planner
    reads the live simulation through it), and a ``replan_ms`` list of planning times (ms) is
    summarised as the report's replan latency. A policy that plans chunks offers
    ``plan_chunk(observations[T, S]) -> float32[H, A]`` (see the module function ``plan_chunk``).
    """

    def reset(self, task: dict[str, Any] | None, seed: int) -> None:
        """Start an episode with plan step ``task``; ``seed`` makes any sampling reproducible."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One action ``float32[A]`` in env units."""


@dataclass
class PolicySpec:
    """How to build a policy: what ``--model``, ``--env`` and friends said.

    Attributes:
        model: a checkpoint directory (``None`` for policies without weights).
        env_id: the env the policy will act in (to check observation sizes).
        observation_dim, action_dim: the env's sizes.
        device: torch device for learned policies.
        num_inference_steps: diffusion sampling steps (``None``: the model's default).
        action_steps: actions executed per proposed chunk (``None``: the model's default).
        use_goal: give the policy the task as its goal (otherwise it acts goal-free).
        options: extra ``--policy-option KEY=VALUE`` settings for a policy.
        planner: ``dmpc`` only: the planner (``ssr``, ``mppi``, ``cem``, ``oracle``).
        dynamics: ``dmpc`` only: a dynamics checkpoint directory, or ``"oracle"``.
    """

    model: Path | None
    env_id: str
    observation_dim: int
    action_dim: int
    device: str = "cpu"
    num_inference_steps: int | None = None
    action_steps: int | None = None
    use_goal: bool = True
    options: dict[str, str] = field(default_factory=dict)
    planner: str | None = None
    dynamics: str | None = None


def plan_chunk(policy: Policy, observations: np.ndarray) -> np.ndarray:
    """The actions ``float32[H, A]`` ``policy`` commits to from the last of ``observations[T, S]`` (the
    observations since the previous call, oldest first; H >= 1). A chunking policy's own
    ``plan_chunk`` (D-MPC, the proposer: a fresh chunk, the first action included); for a
    closed-loop policy (the scripted expert) one ``act`` on the last observation: a one-action chunk."""
    own = getattr(policy, "plan_chunk", None)
    if own is not None:
        return np.asarray(own(observations), dtype=np.float32)
    obs = np.asarray(observations, dtype=np.float32)
    return np.asarray(policy.act(obs.reshape(-1, obs.shape[-1])[-1]), dtype=np.float32).reshape(1, -1)


POLICIES: dict[str, Callable[[PolicySpec], Policy]] = {}
"""policy name -> builder; extend with ``register_policy``."""


def register_policy(name: str) -> Callable[[Callable[[PolicySpec], Policy]], Callable[[PolicySpec], Policy]]:
    """Decorator adding a policy builder to ``POLICIES`` under ``name``."""

    def deco(builder: Callable[[PolicySpec], Policy]) -> Callable[[PolicySpec], Policy]:
        if name in POLICIES:
            raise ValueError(f"policy {name!r} is already registered")
        POLICIES[name] = builder
        return builder

    return deco


class ProposerPolicy:
    """The diffusion proposer used alone as a policy (``select_action`` with its action queue)."""

    def __init__(self, spec: PolicySpec) -> None:
        from forethought.models.proposer.modeling_proposer import DiffusionProposer

        if spec.model is None:
            raise ValueError("--policy proposer needs --model DIR (a proposer checkpoint)")
        if spec.options:
            raise ValueError(f"--policy proposer takes no --policy-option, got {sorted(spec.options)}")
        self.proposer = DiffusionProposer.from_pretrained(spec.model, device=spec.device)
        c = self.proposer.config
        if c.obs_dim != spec.observation_dim or c.action_dim != spec.action_dim:
            raise ValueError(
                f"proposer {spec.model} takes observations of width {c.obs_dim} and acts with width {c.action_dim}, "
                f"but {spec.env_id} has {spec.observation_dim} and {spec.action_dim}: use a model trained on this env"
            )
        if c.env_id is not None and c.env_id != spec.env_id:
            print(f"warning: proposer {spec.model} was trained on {c.env_id}, evaluating on {spec.env_id}",
                  file=sys.stderr)
        self.steps, self.action_steps = spec.num_inference_steps, spec.action_steps
        self.use_goal = spec.use_goal and c.use_goal
        self.proposer.reset(num_inference_steps=self.steps, n_action_steps=self.action_steps)  # validates both

    def reset(self, task: dict[str, Any] | None, seed: int) -> None:
        self.proposer.reset(goal=task if self.use_goal else None, seed=seed, num_inference_steps=self.steps,
                            n_action_steps=self.action_steps)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.proposer.select_action(obs)

    def plan_chunk(self, observations: np.ndarray) -> np.ndarray:
        return self.proposer.plan_chunk(observations)


class ExpertPolicy:
    """The env's scripted expert (``forethought.sim.experts``): the reference for every learned policy."""

    def __init__(self, spec: PolicySpec) -> None:
        from forethought.sim.experts import make_expert

        if spec.model is not None or spec.options:
            raise ValueError("--policy expert takes no --model or --policy-option")
        self.expert = make_expert(spec.env_id)
        self.task: dict[str, Any] | None = None

    def reset(self, task: dict[str, Any] | None, seed: int) -> None:
        if task is None:
            raise ValueError("the scripted expert needs the task; do not pass --no-goal with --policy expert")
        self.expert.reset()
        self.task = task

    def act(self, obs: np.ndarray) -> np.ndarray:
        assert self.task is not None, "reset() first"
        return self.expert.act(obs, self.task)


register_policy("proposer")(ProposerPolicy)
register_policy("expert")(ExpertPolicy)


def parse_seeds(text: str) -> list[int]:
    """``"0-49"`` -> ``[0, ..., 49]``; also ``"3"`` and comma lists such as ``"0,5,10-12"``."""
    seeds: list[int] = []
    for part in text.split(","):
        a, sep, b = part.strip().partition("-")
        try:
            lo, hi = int(a), int(b) if sep else int(a)
        except ValueError:
            raise ValueError(f"--seeds {text!r}: expected integers and ranges such as 0-49 or 0,5,10-12") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"--seeds {text!r}: range {part!r} must be non-negative and ascending")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r} lists a seed twice")
    return seeds


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95% by default) for ``successes`` out of ``n`` trials."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds at 0 and n are exactly 0 and 1; the formula only reaches them up to rounding.
    lo = 0.0 if successes == 0 else max(0.0, center - half)
    hi = 1.0 if successes == n else min(1.0, center + half)
    return lo, hi


@dataclass
class EpisodeResult:
    seed: int
    task: dict[str, Any] | None
    success: bool
    episode_return: float
    steps: int
    final_distance: float | None
    disturbance_m: float | None = None
    reissues: int = 0
    failure: str = ""


@dataclass
class EvalReport:
    """Summary over all episodes; ``to_dict`` is what ``--json`` prints."""

    env: str
    policy: str
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_return: float
    std_return: float
    mean_steps: float
    step_ms_median: float
    step_ms_mean: float
    per_episode: list[EpisodeResult]
    replans: int = 0
    replan_ms_median: float | None = None
    replan_ms_p90: float | None = None
    disturbance_m_median: float | None = None
    disturbance_m_p90: float | None = None
    plan_success_rate: float | None = None
    plan_ci_low: float | None = None
    plan_ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_for_seed(env: gym.Env, seed: int, skills: Sequence[str] | None, task: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The task of episode ``seed``: ``task`` if given; a PushBlocks task of ``skills`` drawn from
    the seed; or ``None`` (the env draws its own)."""
    if task is not None:
        return dict(task)
    if skills is None:
        return None
    n_blocks = getattr(env.unwrapped, "n_blocks", None)
    if n_blocks is None:
        raise ValueError(f"--skill draws PushBlocks tasks; {env.spec.id if env.spec else env} is not PushBlocks")
    return sample_task(np.random.default_rng(seed), BLOCK_NAMES[:n_blocks], tuple(skills))


def parse_plan(value: Any) -> list[dict[str, Any]]:
    """The steps of a plan given as ``{"steps": [...]}`` (a planner's plan) or a list of steps;
    each step is checked against the whole PushBlocks scene (``scene.validate_step``)."""
    steps = value.get("steps") if isinstance(value, Mapping) else value
    if isinstance(value, Mapping) and value.get("refusal"):
        raise ValueError(f"--plan is a refusal ({value['refusal']!r}): nothing to evaluate")
    if not isinstance(steps, list) or not steps:
        raise ValueError(f'--plan must be {{"steps": [step, ...]}} or a non-empty list of steps, got {value!r}')
    return [scene.validate_step(s) for s in steps]


def _run_steps(env: gym.Env, policy: Policy, obs: np.ndarray, task: dict[str, Any] | None, seed: int,
               frames: list[np.ndarray] | None, step_ms: list[float], limit: int | None,
               progress: PlanProgress | None) -> tuple[np.ndarray, dict[str, Any], float, int, float | None]:
    """Drive ``policy`` from ``obs``: one episode for ``task``, or (``progress``) the whole plan, the
    policy reset with each issued step. Returns the last obs and info, return, env steps and the
    largest disturbance (m; ``None`` outside PushBlocks)."""
    pushblocks = task_env_id(env.spec.id if env.spec else "") == PUSH_BLOCKS_ID
    info: dict[str, Any] = {}
    ret, steps, worst = 0.0, 0, 0.0
    while True:
        policy.reset(task, seed)
        start, issued_at = obs, steps
        while True:
            t0 = time.perf_counter()
            action = policy.act(obs)
            step_ms.append((time.perf_counter() - t0) * 1e3)
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            steps += 1
            if frames is not None:
                frames.append(env.render())
            if pushblocks and task is not None:
                worst = max(worst, disturbance(task, start, obs))
            if progress is None:
                if terminated or truncated:
                    return obs, info, ret, steps, worst if pushblocks else None
                continue
            event = progress.update(obs, steps * env.unwrapped.dt)
            if event is not None or steps - issued_at >= limit:
                break
        if progress.active is None:
            return obs, info, ret, steps, worst
        if event is None:
            progress.fail(f"step {progress.index + 1} {progress.active} not achieved within {limit} env steps")
            return obs, info, ret, steps, worst
        task = progress.active
        env.unwrapped.set_task(task)


def evaluate(
    policy: Policy,
    env_id: str,
    seeds: Sequence[int],
    policy_name: str = "",
    env_kwargs: Mapping[str, Any] | None = None,
    skills: Sequence[str] | None = None,
    task: Mapping[str, Any] | None = None,
    video_dir: str | Path | None = None,
    progress: Callable[[EpisodeResult], None] | None = None,
    plan: Sequence[Mapping[str, Any]] | None = None,
    max_reissues: int = 2,
    dwell_s: float = DWELL_S,
) -> EvalReport:
    """Run one episode per seed and summarise (see the module docstring).

    Args:
        plan: PushBlocks plan steps to run as a whole in every episode (instead of ``task``/``skills``).
        max_reissues, dwell_s: ``PlanProgress`` settings for ``plan`` (``dwell_s`` in env seconds: each
            observation is stamped ``env steps x dt``; 0.2 is three steps at 10 Hz).
    """
    if not seeds:
        raise ValueError("no seeds to evaluate")
    kwargs = dict(env_kwargs or {})
    if video_dir is not None:
        kwargs["render_mode"] = "rgb_array"
    step_limit = None
    if plan is not None:
        if task is not None or skills:
            raise ValueError("pass a plan, or a task or skills, not both")
        if task_env_id(env_id) != PUSH_BLOCKS_ID:
            raise ValueError(f"--plan runs PushBlocks plans; {env_id!r} is not PushBlocks")
        plan = [dict(s) for s in plan]
        PlanProgress(plan, max_reissues, dwell_s)  # validates the settings
        step_limit = int(gym.spec(env_id).max_episode_steps or 200)
        # the plan's own limits end the episode: one step_limit per issued step
        kwargs["max_episode_steps"] = step_limit * len(plan) * (max_reissues + 1)
    env = gym.make(env_id, **kwargs)
    if hasattr(policy, "bind_env"):
        policy.bind_env(env)
    replans_before = len(getattr(policy, "replan_ms", ()))
    results: list[EpisodeResult] = []
    step_ms: list[float] = []
    try:
        for seed in seeds:
            episode_task = plan[0] if plan is not None else task_for_seed(env, seed, skills, task)
            obs, info = env.reset(seed=seed, options=None if episode_task is None else {"task": episode_task})
            episode_task = info.get("task", episode_task)
            if plan is not None:
                for step in plan:
                    scene.validate_step(step, env.unwrapped.present)
            frames = [env.render()] if video_dir is not None else None
            tracker = None if plan is None else PlanProgress(plan, max_reissues, dwell_s)
            obs, info, ret, steps, worst = _run_steps(env, policy, obs, episode_task, seed, frames, step_ms,
                                                      step_limit, tracker)
            if tracker is None:
                result = EpisodeResult(seed, episode_task, bool(info.get("is_success", False)), ret, steps,
                                       None if "distance" not in info else float(info["distance"]), worst)
            else:
                result = EpisodeResult(seed, {"steps": plan}, tracker.status == DONE, ret, steps,
                                       max(scene.step_distance(s, obs) for s in plan), worst,
                                       sum(tracker.reissues), tracker.reason)
            results.append(result)
            if video_dir is not None:
                _write_video(Path(video_dir) / f"{policy_name or 'policy'}_seed{seed}.mp4", frames or [], env)
            if progress is not None:
                progress(result)
    finally:
        env.close()
    k, n = sum(r.success for r in results), len(results)
    lo, hi = wilson_interval(k, n)
    returns = np.array([r.episode_return for r in results])
    replan_ms = list(getattr(policy, "replan_ms", ()))[replans_before:]
    moved = [r.disturbance_m for r in results if r.disturbance_m is not None]
    return EvalReport(
        env=env_id, policy=policy_name, episodes=n, successes=k, success_rate=k / n, ci_low=lo, ci_high=hi,
        mean_return=float(returns.mean()), std_return=float(returns.std()),
        mean_steps=float(np.mean([r.steps for r in results])),
        step_ms_median=float(np.median(step_ms)), step_ms_mean=float(np.mean(step_ms)), per_episode=results,
        replans=len(replan_ms),
        replan_ms_median=float(np.median(replan_ms)) if replan_ms else None,
        replan_ms_p90=float(np.percentile(replan_ms, 90)) if replan_ms else None,
        disturbance_m_median=float(np.median(moved)) if moved else None,
        disturbance_m_p90=float(np.percentile(moved, 90)) if moved else None,
        plan_success_rate=None if plan is None else k / n,
        plan_ci_low=None if plan is None else lo,
        plan_ci_high=None if plan is None else hi,
    )


def _write_video(path: Path, frames: list[np.ndarray], env: gym.Env) -> None:
    import imageio.v2 as imageio

    fps = max(1, round(1.0 / float(getattr(env.unwrapped, "dt", 0.05))))
    with atomic_path(path) as tmp:
        imageio.mimwrite(tmp, frames, fps=fps, macro_block_size=1)


def build_policy(name: str, spec: PolicySpec) -> Policy:
    """Instantiate registered policy ``name``; unknown names raise ``ValueError``."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}: registered policies are {sorted(POLICIES)}")
    return POLICIES[name](spec)


def format_report(report: EvalReport) -> str:
    """Human-readable summary lines."""
    text = (
        f"{report.policy} on {report.env}: success {report.successes}/{report.episodes} = "
        f"{report.success_rate:.2f} (95% CI {report.ci_low:.2f}-{report.ci_high:.2f}), "
        f"mean return {report.mean_return:.3f} (std {report.std_return:.3f}), mean steps {report.mean_steps:.1f}, "
        f"policy step median {report.step_ms_median:.2f} ms (mean {report.step_ms_mean:.2f} ms)"
    )
    if report.replan_ms_median is not None:
        text += (f", {report.replans} replans: median {report.replan_ms_median:.1f} ms, "
                 f"p90 {report.replan_ms_p90:.1f} ms")
    if report.disturbance_m_median is not None:
        text += (f", other blocks displaced: median {report.disturbance_m_median * 100:.1f} cm, "
                 f"p90 {report.disturbance_m_p90 * 100:.1f} cm")
    if report.plan_success_rate is not None:
        text += (f", plan success {report.plan_success_rate:.2f} "
                 f"(95% CI {report.plan_ci_low:.2f}-{report.plan_ci_high:.2f})")
    return text


def json_object(text: str | None, flag: str) -> dict[str, Any] | None:
    """Parse ``--flag JSON`` into a dict (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{flag} must be a JSON object, got {text!r}: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {text!r}")
    return value
