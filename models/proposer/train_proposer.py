"""``forethought train proposer``: the diffusion proposer through the project's shared trainer.

Examples::

    forethought collect --env forethought/PushBlocks-v0 --episodes 300 --seed 0 --out data/pushblocks.parquet
    forethought train proposer --data data/pushblocks.parquet --config pushblocks \\
        --out models/pretrained/proposer-pushblocks --seed 0
    forethought train proposer --data data/pushblocks.parquet --config tiny --out runs/tiny --steps 50
    forethought train proposer ... --out runs/p --resume          # continue an interrupted run
    forethought train proposer ... --out runs/p2 --init-from models/pretrained/proposer-pushblocks \\
        --steps 3000 --lr 3e-4 --warmup-steps 100                  # fine-tune from shipped weights

``--config`` names a preset (``configuration_proposer.PRESETS``: ``tiny``, ``pushblocks``,
``reacher``, ``gpu``); the data set fixes the observation and action sizes, the action box and
the goal vocabulary. The resolved configuration is written to ``OUT/train_config.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from forethought.models.proposer.configuration_proposer import GOAL_VOCABULARIES, PRESETS, ProposerConfig
from forethought.models.proposer.modeling_proposer import DiffusionProposer
from forethought.models.proposer.processor_proposer import GoalEncoder, MinMaxNormalizer
from forethought.models.training import (ModelTrainer, TrainConfig, TrainResult, data_metadata, given_options,
                                         run_command, seed_everything, train)
from forethought.sim import task_env_id
from forethought.sim.dataset import Dataset


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
    preset = PRESETS.lookup(preset_name)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The proposer's own options of ``forethought train proposer`` (beside ``cli_train``'s shared ones)."""
    parser.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    parser.add_argument("--warmup-steps", type=int, help="override the preset's warm-up steps")
    parser.add_argument("--init-from", type=Path,
                        help="warm-start from the weights and normaliser saved in this directory "
                             "(a fresh run with its own optimiser, schedule and EMA)")


def train_proposer(args: argparse.Namespace) -> TrainResult:
    """``forethought train proposer``."""
    overrides = given_options(args, "steps", "batch_size", "device", "lr", "warmup_steps")
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


TRAINER = ModelTrainer(train_proposer, PRESETS, add_arguments, sources=("expert",))
"""The entry for ``forethought.models.cli_train.TRAINERS["proposer"]``."""
