"""``forethought train draft``: the flags of the draft's distillation (``training/distill_draft.py``).

Example (the shipped draft; see models/pretrained/draft-smollm2/README.md)::

    forethought train draft --out models/pretrained/draft-smollm2
"""

from __future__ import annotations

import argparse

from .options import add_training_arguments, run_job


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..planning.planner import DEFAULT_ADAPTER, DEFAULT_TARGET

    parser.add_argument("--out", required=True, help="draft directory to write")
    parser.add_argument("--target", default=DEFAULT_TARGET, help="teacher: HF directory, .gguf file or 'smollm2'")
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER, help="teacher's LoRA adapter (default: the shipped one)")
    parser.add_argument("--no-adapter", dest="adapter", action="store_const", const=None)
    parser.add_argument("--commands", type=int, default=800, help="train-phrasing commands to trace")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    add_training_arguments(parser, epochs=6, lr=3e-3, batch_size=32, seed=2)


def run(args: argparse.Namespace) -> int:
    from ..training.distill_draft import train

    return run_job(train, args)
