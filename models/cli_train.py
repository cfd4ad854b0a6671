"""``forethought train MODEL``: train one of the project's models with the shared trainer.

Examples::

    forethought collect --env forethought/PushBlocks-v0 --episodes 300 --seed 0 --out data/pushblocks.parquet
    forethought train proposer --data data/pushblocks.parquet --config pushblocks \\
        --out models/pretrained/proposer-pushblocks --seed 0
    forethought train proposer --data data/pushblocks.parquet --config tiny --out runs/tiny --steps 50
    forethought train proposer ... --out runs/p --resume          # continue an interrupted run
    forethought train proposer ... --out runs/p2 --init-from models/pretrained/proposer-pushblocks \\
        --steps 3000 --lr 3e-4 --warmup-steps 100                  # fine-tune from shipped weights

    forethought train world-model --obs state --data data/pushblocks.parquet --config state --out runs/wm
    forethought train planner-lora --out models/pretrained/planner-lora-smollm2   # the planner's models
    forethought train draft --out models/pretrained/draft-smollm2

``--config`` names a preset (``forethought.models.configuration_proposer.PRESETS``: ``tiny``,
``pushblocks``, ``reacher``, ``gpu``); the data set fixes the observation and action sizes, the
action box and the goal vocabulary. The resolved configuration is written to
``OUT/train_config.json``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from forethought.models.configuration_proposer import GOAL_VOCABULARIES, PRESETS, ProposerConfig, get_preset
from forethought.models.modeling_proposer import DiffusionProposer
from forethought.models.processor_proposer import GoalEncoder, MinMaxNormalizer
from forethought.models.training import TrainConfig, TrainResult, data_metadata, run_command, seed_everything, train
from forethought.models.dynamics.train_dynamics import TRAINER as DYNAMICS_TRAINER
from forethought.models.world_model.train_world_model import TRAINER as WORLD_MODEL_TRAINER
from forethought.sim import task_env_id
from forethought.sim.dataset import SOURCES, Dataset


def goal_vocabulary(env_id: str | None) -> dict[str, Any]:
    """Goal settings for data from ``env_id`` (or an env with its tasks): its fixed vocabulary, or no goal."""
    vocabulary = GOAL_VOCABULARIES.get(task_env_id(env_id) or "")
    if vocabulary is not None:
        return dict(vocabulary)
    print(f"note: no goal vocabulary for env {env_id!r} (known: {sorted(GOAL_VOCABULARIES)}); "
          "training a goal-free proposer", file=sys.stderr)
    return {"use_goal": False}


def build_proposer_run(
    data: str | Path, preset_name: str, sources: list[str], seed: int, overrides: dict[str, Any] | None = None
) -> tuple[DiffusionProposer, Callable[[np.random.Generator], dict[str, torch.Tensor]], TrainConfig, dict[str, Any]]:
    """Everything ``train`` needs for a proposer: model, batch sampler, train config, run config.

    Windows are anchored at every step of the ``sources`` episodes; actions start at the
    current step (``a[t .. t+F-1]``, edge-padded at the episode end, as LeRobot pads) and are the
    expert's noise-free labels (``expert_action``; the executed actions in older data sets).
    """
    preset = get_preset(preset_name)
    ds = Dataset.load(data)
    meta = ds.metadata
    env_id = meta.get("env_id")
    if "action_low" not in meta or "action_high" not in meta:
        raise ValueError(f"{data}: metadata has no action_low/action_high (the action box); recollect the data")
    config = ProposerConfig(
        obs_dim=ds.obs_dim,
        action_dim=ds.act_dim,
        action_low=meta["action_low"],
        action_high=meta["action_high"],
        env_id=env_id,
        **goal_vocabulary(env_id),
        **preset.model,
    )
    train_config = TrainConfig.from_dict({**preset.train, "seed": seed, **(overrides or {})})
    w = ds.windows(config.n_obs_steps, config.horizon, future=1, sources=sources, action_column="expert_action")
    if len(w) == 0:
        raise ValueError(f"{data}: no steps from sources {sources}; the data set has sources {sorted(set(ds.sources))}")
    S, A = config.obs_dim, config.action_dim
    normalizer = MinMaxNormalizer.fit(w.obs_history.reshape(-1, S), w.actions.reshape(-1, A))
    if config.use_goal:
        encoder = GoalEncoder(config.goal_skills, config.goal_objects, config.goal_regions, config.goal_region_xy)
        goals = torch.from_numpy(encoder.encode_many(list(ds.tasks))[w.task_index])  # [B, G]
    else:
        goals = torch.zeros(len(w), 0)
    obs = torch.from_numpy(np.ascontiguousarray(w.obs_history))  # [B, n_obs, S]
    actions = torch.from_numpy(np.ascontiguousarray(w.actions))  # [B, F, A]
    batch_size = train_config.batch_size

    def sample_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
        idx = torch.from_numpy(rng.integers(0, len(obs), batch_size))
        return {"obs_history": obs[idx], "actions": actions[idx], "goal": goals[idx]}

    seed_everything(seed)
    model = DiffusionProposer(config, normalizer)
    run_config = {
        "model": "proposer",
        "preset": preset_name,
        "data": str(data),
        "data_metadata": data_metadata(meta),
        "sources": list(sources),
        "windows": len(w),
        "proposer": config.to_dict(),
    }
    return model, sample_batch, train_config, run_config


def warm_start(model: DiffusionProposer, init_from: str | Path) -> None:
    """Copy the U-Net weights and the normaliser of the proposer saved in ``init_from`` into ``model``.

    The saved config must equal ``model.config`` (same data layout, goal vocabulary and sizes) up
    to ``env_id``, so that a proposer can be re-cloned on data from a changed world; the saved
    normaliser replaces the freshly fitted one so the weights see the inputs they were trained on.
    """
    src = DiffusionProposer.from_pretrained(init_from)
    a, b = ({k: v for k, v in c.to_dict().items() if k != "env_id"} for c in (src.config, model.config))
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"--init-from {init_from}: its config differs from this run's in {diff}")
    model.unet.load_state_dict(src.unet.state_dict(), strict=True)
    model.normalizer = src.normalizer


def train_proposer(args: argparse.Namespace) -> TrainResult:
    """``forethought train proposer``."""
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("device", args.device),
                                   ("lr", args.lr),
                                   ("warmup_steps", args.warmup_steps))
                 if v is not None}
    model, sample_batch, train_config, run_config = build_proposer_run(
        args.data, args.config, args.sources, args.seed, overrides
    )
    init_from = args.init_from
    if init_from is not None:
        warm_start(model, init_from)
        run_config["init_from"] = str(init_from)
    run_config["command"] = run_command(
        ["forethought", "train", "proposer", "--data", str(args.data), "--config", args.config, "--out", str(args.out),
         "--seed", str(args.seed)] + (["--sources", *args.sources] if args.sources != ["expert"] else []),
        (("--steps", args.steps), ("--batch-size", args.batch_size), ("--device", args.device), ("--lr", args.lr),
         ("--warmup-steps", args.warmup_steps), ("--init-from", init_from)))
    print(f"proposer: {model.num_parameters:,} parameters ({model.num_parameters * 4 / 1e6:.2f} MB float32), "
          f"{run_config['windows']:,} windows from {args.data}")
    return train(model, sample_batch, train_config, args.out, run_config, resume=args.resume,
                 keep_checkpoints=args.keep_checkpoints)


TRAINERS: dict[str, tuple[Callable[[argparse.Namespace], TrainResult], dict[str, Any]]] = {
    "proposer": (train_proposer, PRESETS),
    "world-model": WORLD_MODEL_TRAINER,
    "dynamics": DYNAMICS_TRAINER,
}
"""model name -> (train function, its named configs)."""


LLM_TRAINERS: dict[str, tuple[str, str]] = {
    "draft": ("forethought.llm_planner.cli_train_draft",
              "distil the planner's tiny Llama draft from the target on plan-generation traces"),
    "planner-lora": ("forethought.llm_planner.cli_train_lora",
                     "fine-tune the planner's target with a LoRA adapter on labelled commands"),
}
"""model name -> (module with ``add_arguments``/``run``, help line): the planner's models, trained on commands."""


def add_dataset_arguments(parser: argparse.ArgumentParser, model: str, presets: dict[str, Any]) -> None:
    """Arguments of ``forethought train MODEL`` for the models trained on a collected data set."""
    parser.add_argument("--data", type=Path, required=True, help="data set (.parquet) from `forethought collect`")
    parser.add_argument("--config", required=True, help=f"named preset: {', '.join(presets)}")
    if model == "world-model":
        parser.add_argument("--obs", choices=("state", "pixels"), help="observation type; must match --config")
    parser.add_argument("--out", type=Path, required=True, help="output directory (weights, config, loss.png)")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation and every step's randomness")
    parser.add_argument("--steps", type=int, help="override the preset's number of optimiser steps")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--device", help="cpu (default) or cuda")
    if model == "proposer":
        parser.add_argument("--lr", type=float, help="override the preset's peak learning rate")
        parser.add_argument("--warmup-steps", type=int, help="override the preset's warm-up steps")
        parser.add_argument("--init-from", type=Path,
                            help="warm-start from the weights and normaliser saved in this directory "
                                 "(a fresh run with its own optimiser, schedule and EMA)")
    if model == "dynamics":
        parser.add_argument("--ensemble-size", type=int, help="override the preset's number of members K")
        parser.add_argument("--weight-decay", type=float, help="override the preset's AdamW weight decay")
        parser.add_argument("--horizon", type=int, help="override the steps predicted per network call")
        parser.add_argument("--rollout-horizon", type=int,
                            help="longest chunk a rollout takes, chaining calls beyond --horizon (default: --horizon)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    sources = ["expert", "play"] if model == "dynamics" else ["expert"]  # dynamics need broad action coverage
    parser.add_argument("--sources", nargs="+", default=sources, choices=SOURCES,
                        help=f"episode sources to train on (default: {' '.join(sources)})")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep OUT/checkpoints/last.pt at the end")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forethought train``: one sub-command per model."""
    parser.description = __doc__.splitlines()[0]
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, (_, presets) in TRAINERS.items():
        add_dataset_arguments(sub.add_parser(name, help=f"train the {name} on a collected data set"), name, presets)
    for name, (module, help_line) in LLM_TRAINERS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run ``forethought train``; user errors print one line and return 2."""
    if args.model in LLM_TRAINERS:
        return int(importlib.import_module(LLM_TRAINERS[args.model][0]).run(args) or 0)
    torch.set_num_threads(args.threads)
    train_fn, presets = TRAINERS[args.model]
    if args.config not in presets:
        print(f"error: unknown {args.model} config {args.config!r}: valid configs are {sorted(presets)}", file=sys.stderr)
        return 2
    try:
        result = train_fn(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"trained {result.steps} steps in {result.wall_s:.0f} s ({result.seconds_per_step * 1e3:.0f} ms/step); "
          f"loss {result.first_loss:.4f} -> {result.final_loss:.4f}; saved to {args.out}")
    return 0
