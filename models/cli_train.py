"""``forethought train MODEL``: train one of the project's models.

Examples::

    forethought collect --env forethought/PushBlocks-v0 --episodes 300 --seed 0 --out data/pushblocks.parquet
    forethought train proposer --data data/pushblocks.parquet --config tiny --out runs/tiny --steps 50
    forethought train dynamics --data data/pushblocks.parquet --config tiny --out runs/dyn
    forethought train distill-proposer --teacher models/pretrained/proposer-pushblocks \
        --data data/pushblocks.parquet --config cpu --out runs/proposer-fast   # a one-step student
    forethought train world-model --obs state --data data/pushblocks.parquet --config state --out runs/wm
    forethought train planner-lora --out models/pretrained/planner-lora-smollm2   # the planner's models
    forethought train draft --out models/pretrained/draft-smollm2

The models trained on a collected data set share one shape: ``<package>/train_<model>.py``
exposes a ``ModelTrainer`` (its train function, its presets, its own options and its default
sources), and this module adds the options they share and dispatches. ``--config`` names one of
the model's presets; the data set fixes the observation and action sizes. The resolved
configuration is written to ``OUT/train_config.json``. More examples are in each train module's
docstring.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

from forethought.models.dynamics.train_dynamics import TRAINER as DYNAMICS_TRAINER
from forethought.models.proposer.distill_proposer import TRAINER as DISTILL_PROPOSER_TRAINER
from forethought.models.proposer.train_proposer import TRAINER as PROPOSER_TRAINER
from forethought.models.training import ModelTrainer
from forethought.models.world_model.train_world_model import TRAINER as WORLD_MODEL_TRAINER
from forethought.sim.dataset import SOURCES

TRAINERS: dict[str, ModelTrainer] = {
    "proposer": PROPOSER_TRAINER,
    "world-model": WORLD_MODEL_TRAINER,
    "dynamics": DYNAMICS_TRAINER,
    "distill-proposer": DISTILL_PROPOSER_TRAINER,
}
"""model name -> how it trains on a collected data set."""


LLM_TRAINERS: dict[str, tuple[str, str]] = {
    "draft": ("forethought.llm_planner.cli.train_draft",
              "distil the planner's tiny Llama draft from the target on plan-generation traces"),
    "planner-lora": ("forethought.llm_planner.cli.train_planner_lora",
                     "fine-tune the planner's target with a LoRA adapter on labelled commands"),
}
"""model name -> (module with ``add_arguments``/``run``, help line): the planner's models, trained on commands."""


def add_dataset_arguments(parser: argparse.ArgumentParser, trainer: ModelTrainer) -> None:
    """Arguments of ``forethought train MODEL`` for a model trained on a collected data set."""
    parser.add_argument("--data", type=Path, required=True, help="data set (.parquet) from `forethought collect`")
    parser.add_argument("--config", required=True, help=f"named preset: {', '.join(trainer.presets)}")
    parser.add_argument("--out", type=Path, required=True, help="output directory (weights, config, loss.png)")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation and every step's randomness")
    parser.add_argument("--steps", type=int, help="override the preset's number of optimiser steps")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--device", help="cpu (default) or cuda")
    trainer.add_arguments(parser)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    sources = list(trainer.sources)
    parser.add_argument("--sources", nargs="+", default=sources, choices=SOURCES,
                        help=f"episode sources to train on (default: {' '.join(sources)})")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep OUT/checkpoints/last.pt at the end")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``forethought train``: one sub-command per model."""
    parser.description = __doc__.splitlines()[0]
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, trainer in TRAINERS.items():
        add_dataset_arguments(sub.add_parser(name, help=f"train the {name} on a collected data set"), trainer)
    for name, (module, help_line) in LLM_TRAINERS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run ``forethought train``; user errors (an unknown ``--config`` among them) print one line and return 2."""
    if args.model in LLM_TRAINERS:
        return int(importlib.import_module(LLM_TRAINERS[args.model][0]).run(args) or 0)
    torch.set_num_threads(args.threads)
    try:
        result = TRAINERS[args.model].train(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"trained {result.steps} steps in {result.wall_s:.0f} s ({result.seconds_per_step * 1e3:.0f} ms/step); "
          f"loss {result.first_loss:.4f} -> {result.final_loss:.4f}; saved to {args.out}")
    return 0
