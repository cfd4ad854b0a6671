"""``forethought eval``: success rate (Wilson 95% interval), mean return and step time over fixed seeds.

Examples::

    forethought eval --policy proposer --model models/pretrained/proposer-pushblocks \\
        --env forethought/PushBlocks-v0 --env-kwargs '{"n_blocks": 1}' --skill push --seeds 0-49
    forethought eval --policy proposer --model models/pretrained/proposer-reacher \\
        --env forethought/Reacher-v5 --seeds 0-49 --json
    forethought eval --policy expert --env forethought/Reacher-v5 --seeds 0-49 --video videos/
    forethought eval --policy dmpc --planner ssr --model models/pretrained/proposer-pushblocks \\
        --dynamics models/pretrained/dynamics-pushblocks --env forethought/PushBlocks-v0 \\
        --env-kwargs '{"n_blocks": 1}' --skill push --seeds 0-49 --inference-steps 5
    forethought eval --policy expert --env forethought/PushBlocks-v0 --seeds 0-49 --json --plan \
        '{"steps": [{"skill": "push", "object": "red_block", "target": "left"},
                    {"skill": "push", "object": "green_block", "target": "right"}]}'

With ``--json`` the last line printed is one JSON object with ``success_rate``, ``ci_low``,
``ci_high``, ``episodes``, ``mean_return``, ``step_ms_median``, the per-episode results and, for
planning policies, ``replan_ms_median`` and ``replan_ms_p90``; on PushBlocks,
``disturbance_m_median`` and ``disturbance_m_p90`` (the largest displacement of a block the step
does not name, per episode); with ``--plan``, ``plan_success_rate``, ``plan_ci_low`` and
``plan_ci_high`` (every step holds at the end; ``sim.plan_progress``, as the executive decides).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import forethought.models.control.policy  # noqa: F401  (registers dmpc)
import forethought.models.world_model.eval_policy  # noqa: F401  (registers latent-cem, latent-mppi)
from forethought.cli_args import key_values
from forethought.models.evaluation import (
    POLICIES,
    PolicySpec,
    build_policy,
    evaluate,
    format_report,
    json_object,
    parse_plan,
    parse_seeds,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forethought eval``."""
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--policy", required=True, help=f"registered policy: {', '.join(sorted(POLICIES))}")
    parser.add_argument("--model", type=Path, help="checkpoint directory of a learned policy")
    parser.add_argument("--planner", choices=("ssr", "mppi", "cem", "oracle"),
                        help="--policy dmpc: D-MPC SSR (default), proposal-seeded MPPI, plain CEM, or the oracle")
    parser.add_argument("--dynamics", metavar="DIR|oracle",
                        help="--policy dmpc: dynamics-ensemble or SIGReg world-model (state) directory, or 'oracle' "
                             "(a copy of the simulator)")
    parser.add_argument("--proposer", type=Path, metavar="DIR", help="--policy dmpc: proposer checkpoint (as --model)")
    parser.add_argument("--env", required=True, help="gymnasium env id, e.g. forethought/PushBlocks-v0")
    parser.add_argument("--seeds", default="0-49", help="episode seeds: 0-49 (default), or a list 0,5,10-12")
    parser.add_argument("--env-kwargs", help='JSON kwargs for gymnasium.make, e.g. \'{"n_blocks": 1}\'')
    parser.add_argument("--skill", action="append", choices=("push", "reach"),
                        help="PushBlocks: draw each seed's task from these skills (repeatable)")
    parser.add_argument("--task", help="one fixed plan step (JSON) for every episode")
    parser.add_argument("--plan", metavar="JSON|FILE",
                        help='PushBlocks: run this whole plan ({"steps": [...]} or a list of steps, inline or in a '
                             "file) in every episode; success means every step holds at the end")
    parser.add_argument("--max-reissues", type=int, default=2,
                        help="--plan: re-issue a step broken by a later step at most this often (default 2)")
    parser.add_argument("--no-goal", action="store_true", help="do not give the policy the task (goal-free)")
    parser.add_argument("--inference-steps", type=int, help="DDIM steps (default: the model's)")
    parser.add_argument("--action-steps", type=int, help="actions executed per proposed chunk (default: the model's)")
    parser.add_argument("--policy-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra setting for the policy (repeatable)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--video", type=Path, metavar="DIR", help="write one MP4 per episode into DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")


def run(args: argparse.Namespace) -> int:
    """Run ``forethought eval``; user errors print one line and return 2."""
    torch.set_num_threads(args.threads)
    try:
        seeds = parse_seeds(args.seeds)
        env_kwargs = json_object(args.env_kwargs, "--env-kwargs") or {}
        task = json_object(args.task, "--task")
        if task is not None and args.skill:
            raise ValueError("pass either --task or --skill, not both")
        plan = None
        if args.plan is not None:
            text = Path(args.plan).read_text() if Path(args.plan).is_file() else args.plan
            try:
                plan = parse_plan(json.loads(text))
            except json.JSONDecodeError as e:
                raise ValueError(f"--plan must be JSON or a JSON file, got {args.plan!r}: {e}") from None
        options = key_values(args.policy_option, "--policy-option")
        if (args.planner or args.dynamics or args.proposer) and args.policy != "dmpc":
            raise ValueError("--planner, --dynamics and --proposer only apply to --policy dmpc")
        if args.proposer is not None and args.model is not None and args.proposer != args.model:
            raise ValueError("--proposer and --model name different checkpoints: pass one of them")
        probe = gym.make(args.env, **env_kwargs)
        obs_dim, act_dim = int(np.prod(probe.observation_space.shape)), int(np.prod(probe.action_space.shape))
        probe.close()
        spec = PolicySpec(model=args.proposer or args.model, env_id=args.env, observation_dim=obs_dim,
                          action_dim=act_dim, device=args.device, num_inference_steps=args.inference_steps,
                          action_steps=args.action_steps, use_goal=not args.no_goal,
                          options=options, planner=args.planner, dynamics=args.dynamics)
        policy = build_policy(args.policy, spec)
        report = evaluate(policy, args.env, seeds, policy_name=args.policy, env_kwargs=env_kwargs,
                          skills=args.skill, task=task, video_dir=args.video, plan=plan,
                          max_reissues=args.max_reissues)
    except (ValueError, FileNotFoundError, gym.error.Error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0
