"""``forethought train planner-lora``: the flags of the target's LoRA fine-tuning (``training/finetune_lora.py``).

Example (the shipped adapter; see models/pretrained/planner-lora-smollm2/README.md)::

    forethought train planner-lora --out models/pretrained/planner-lora-smollm2
"""

from __future__ import annotations

import argparse

from .options import add_training_arguments, run_job


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="adapter directory to write")
    parser.add_argument("--target", default="smollm2", help="base model: HF directory, .gguf file or 'smollm2'")
    parser.add_argument("--generated", type=int, default=760, help="train-phrasing rows generated on top of the shipped train split")
    parser.add_argument("--composed", type=int, default=0, help="rows of the compositional generator (planning/compose.py) on top")
    parser.add_argument("--layers", type=int, default=8, help="adapt the top N decoder layers")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    add_training_arguments(parser, epochs=3, lr=2e-3, batch_size=16, seed=1)
    parser.add_argument("--init-from", default=None, help="adapter to start from (same layers and rank); default: a fresh one")


def run(args: argparse.Namespace) -> int:
    from ..training.finetune_lora import train

    return run_job(train, args)
