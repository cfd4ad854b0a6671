"""``forethought train distill-proposer``: a one-step student of the diffusion proposer.

The student is a ``DiffusionProposer`` of the teacher's size, warm-started from its U-Net (or, with
``--student-down-dims``, a narrower U-Net trained from scratch: the convolutions' cost scales about
with the square of the widths), that predicts the clean chunk (``prediction_type="sample"``) and
samples with the same diffusers ``DDIMScheduler`` set to ``student_steps`` (1 by default;
``timestep_spacing="trailing"`` starts it at the last train step). It is trained to land, from the
same Gaussian noise ``x_T`` and the same conditioning, where the teacher's deterministic DDIM sampler (``teacher_steps``: 5 in the
``cpu`` preset, D-MPC's setting) lands: the loss is ``|| DDIM_student(x_T, c) - DDIM_teacher(x_T, c) ||^2`` through the
scheduler's own ``step`` (direct distillation of a deterministic sampler, Luhman & Luhman,
arXiv 2101.02388, the one-jump limit of progressive distillation, arXiv 2202.00512).
Observations and goals come from a collected data set; the targets are the teacher's samples,
drawn fresh at every step, so no action label is used. The output folder is an ordinary proposer
checkpoint: ``forethought eval --policy dmpc --model OUT`` and ``forethought export`` take it.

Examples::

    forethought collect --env forethought/PushBlocks-v0 --episodes 2000 --noise 0.1 --play-fraction 0.2 \\
        --disturb 0.5 --seed 40000 --out data/distill-pushblocks-2k.parquet
    forethought train distill-proposer --teacher models/pretrained/proposer-pushblocks \\
        --data data/distill-pushblocks-2k.parquet --config cpu --out runs/proposer-fast --threads 2
    forethought train distill-proposer ... --student-steps 2 --init-from runs/proposer-fast \
        --out runs/proposer-fast2 --steps 600                             # a 2-step student from the 1-step one
    forethought train distill-proposer ... --student-down-dims 24 48 96 --lr 5e-4 --steps 6000 \\
        --out runs/proposer-slim                                          # narrower, from scratch
    forethought train distill-proposer ... --config gpu --device cuda     # longer, bigger batches
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forethought.models.configuration import Preset, PresetRegistry
from forethought.models.proposer.modeling_proposer import DiffusionProposer
from forethought.models.proposer.processor_proposer import GoalEncoder
from forethought.models.training import (ModelTrainer, TrainConfig, TrainResult, data_metadata, given_options,
                                         run_command, seed_everything, train)
from forethought.sim.dataset import Dataset

PRESETS = PresetRegistry("distill-proposer", {
    "tiny": Preset("seconds-long run for tests", model={"teacher_steps": 2},
                   train={"steps": 4, "batch_size": 8, "lr": 1e-4, "warmup_steps": 1, "checkpoint_every": 2,
                          "log_every": 1}),
    "cpu": Preset("minutes on 1-2 CPU threads: 800 steps of 64 chunks, the teacher at DDIM 5 (D-MPC's setting)",
                  model={"teacher_steps": 5},
                  train={"steps": 800, "batch_size": 64, "lr": 3e-4, "weight_decay": 1e-6, "warmup_steps": 50,
                         "checkpoint_every": 200, "log_every": 20}),
    "gpu": Preset("a GPU host: 20k steps of 512 chunks, the teacher at DDIM 10",
                  model={"teacher_steps": 10},
                  train={"steps": 20_000, "batch_size": 512, "lr": 3e-4, "weight_decay": 1e-6, "warmup_steps": 500,
                         "checkpoint_every": 2000}),
})
"""``model`` may set ``teacher_steps`` and ``student_steps``; ``train`` is a ``TrainConfig``."""


def student_config(teacher: DiffusionProposer, student_steps: int = 1, down_dims: list[int] | None = None) -> Any:
    """The student's ``ProposerConfig``: the teacher's, predicting ``sample`` with ``student_steps`` DDIM steps,
    with the U-Net widths ``down_dims`` (default: the teacher's)."""
    widths = list(teacher.config.down_dims) if down_dims is None else [int(d) for d in down_dims]
    if len(widths) != len(teacher.config.down_dims) or any(d < 1 or d % teacher.config.n_groups for d in widths):
        raise ValueError(f"student down_dims {widths} must be {len(teacher.config.down_dims)} positive multiples of "
                         f"the teacher's n_groups {teacher.config.n_groups} (the U-Net's levels and GroupNorm)")
    return replace(teacher.config, prediction_type="sample", num_inference_steps=student_steps, down_dims=widths)


class ProposerDistillation(nn.Module):
    """The student (trained, saved) and its frozen teacher, with the distillation loss.

    Only the student is a submodule, so the trainer's optimiser, EMA and checkpoints see only
    its weights; ``save_pretrained`` writes the student alone. The student starts from
    ``init_from``'s weights (and widths, unless ``down_dims`` is given), else from the teacher's when
    it has the teacher's widths, else from a random initialisation.
    """

    def __init__(self, teacher: DiffusionProposer, teacher_steps: int | None = None, student_steps: int = 1,
                 init_from: DiffusionProposer | None = None, down_dims: list[int] | None = None) -> None:
        super().__init__()
        self.teacher_steps = teacher.config.check_inference_steps(teacher_steps or teacher.config.num_inference_steps)
        self._teacher = (teacher.eval().requires_grad_(False),)  # a tuple: not a submodule
        if down_dims is None and init_from is not None:
            down_dims = list(init_from.config.down_dims)
        self.student = DiffusionProposer(student_config(teacher, student_steps, down_dims), teacher.normalizer)
        if init_from is not None:
            if student_config(init_from, student_steps) != self.student.config:
                raise ValueError("--init-from: that proposer is not a student of this teacher with these widths (its "
                                 "config differs beyond prediction_type and num_inference_steps)")
            self.student.unet.load_state_dict(init_from.unet.state_dict())
        elif list(self.student.config.down_dims) == list(teacher.config.down_dims):
            self.student.unet.load_state_dict(teacher.unet.state_dict())

    @property
    def teacher(self) -> DiffusionProposer:
        return self._teacher[0]

    def compute_loss(self, batch: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """MSE between the student's and the teacher's DDIM outputs (normalised) from the same noise.

        ``obs_history[B, n_obs, S]``, ``goal[B, G]`` (each row dropped to "no goal" with the
        teacher's ``goal_dropout``, so both kinds of proposal are distilled).
        """
        obs = batch["obs_history"]
        teacher, student = self.teacher.to(obs.device), self.student
        goal = None
        if student.goal_encoder is not None:
            keep = torch.rand(obs.shape[0], 1, generator=generator, device=obs.device) >= student.config.goal_dropout
            goal = batch["goal"] * keep
        cond = student.global_cond(obs, goal)  # [B, D]; the student shares the teacher's normaliser
        shape = (obs.shape[0], student.config.horizon, student.config.action_dim)
        noise = torch.randn(shape, generator=generator, device=obs.device)
        with torch.no_grad():
            target = teacher.conditional_sample(cond, noise=noise, num_inference_steps=self.teacher_steps)
        pred = student.conditional_sample(cond, noise=noise)
        return F.mse_loss(pred, target)

    def save_pretrained(self, directory: str | Path) -> None:
        self.student.save_pretrained(directory)


def conditioning(data: str | Path, teacher: DiffusionProposer, sources: list[str]) -> tuple[Tensor, Tensor]:
    """``obs_history[N, n_obs, S]`` and ``goal[N, G]`` at every step of the ``sources`` episodes of ``data``."""
    c = teacher.config
    ds = Dataset.load(data)
    if ds.obs_dim != c.obs_dim or ds.act_dim != c.action_dim:
        raise ValueError(f"{data} has observation/action widths {ds.obs_dim}/{ds.act_dim}, the teacher "
                         f"{c.obs_dim}/{c.action_dim}: collect data on the teacher's env {c.env_id}")
    w = ds.windows(c.n_obs_steps, c.horizon, future=1, sources=sources)
    if len(w) == 0:
        raise ValueError(f"{data}: no steps from sources {sources}; the data set has sources {sorted(set(ds.sources))}")
    obs = torch.from_numpy(np.ascontiguousarray(w.obs_history, dtype=np.float32))
    if c.use_goal:
        encoder = GoalEncoder(c.goal_skills, c.goal_objects, c.goal_regions, c.goal_region_xy)
        goals = torch.from_numpy(encoder.encode_many(list(ds.tasks))[w.task_index])
    else:
        goals = torch.zeros(len(w), 0)
    return obs, goals


def build_distillation_run(
    teacher_dir: str | Path, data: str | Path, preset_name: str, sources: list[str], seed: int,
    overrides: dict[str, Any] | None = None, teacher_steps: int | None = None, student_steps: int | None = None,
    init_from: str | Path | None = None, student_down_dims: list[int] | None = None,
) -> tuple[ProposerDistillation, Callable[[np.random.Generator], dict[str, Tensor]], TrainConfig, dict[str, Any]]:
    """Everything ``train`` needs: the distillation module, a batch sampler, the train and run configs."""
    preset = PRESETS.lookup(preset_name)
    train_config = TrainConfig.from_dict({**preset.train, "seed": seed, **(overrides or {})})
    teacher = DiffusionProposer.from_pretrained(teacher_dir)
    obs, goals = conditioning(data, teacher, sources)
    seed_everything(seed)
    model = ProposerDistillation(teacher, teacher_steps or preset.model.get("teacher_steps"),
                                 student_steps or preset.model.get("student_steps", 1),
                                 None if init_from is None else DiffusionProposer.from_pretrained(init_from),
                                 student_down_dims)
    batch_size = train_config.batch_size

    def sample_batch(rng: np.random.Generator) -> dict[str, Tensor]:
        idx = torch.from_numpy(rng.integers(0, len(obs), batch_size))
        return {"obs_history": obs[idx], "goal": goals[idx]}

    run_config = {
        "model": "distill-proposer",
        "preset": preset_name,
        "teacher": str(teacher_dir),
        "teacher_steps": model.teacher_steps,
        "init_from": None if init_from is None else str(init_from),
        "student_down_dims": model.student.config.down_dims,
        "data": str(data),
        "data_metadata": data_metadata(Dataset.load(data).metadata),
        "sources": list(sources),
        "windows": len(obs),
        "proposer": model.student.config.to_dict(),
    }
    return model, sample_batch, train_config, run_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The distillation's own options (beside ``cli_train``'s shared ones)."""
    parser.add_argument("--teacher", type=Path, required=True, help="the proposer checkpoint to distil")
    parser.add_argument("--teacher-steps", type=int, help="the teacher's DDIM steps (default: the preset's or its own)")
    parser.add_argument("--student-steps", type=int, help="the student's DDIM steps (default 1)")
    parser.add_argument("--lr", type=float, help="override the preset's peak learning rate")
    parser.add_argument("--init-from", type=Path,
                        help="start the student from this earlier student's weights (e.g. a 1-step one for 2 steps)")
    parser.add_argument("--student-down-dims", type=int, nargs="+", metavar="WIDTH",
                        help="the student U-Net's widths, one per level (default: the teacher's, warm-started from "
                             "its weights; other widths start from scratch), e.g. 24 48 96")


def train_distillation(args: argparse.Namespace) -> TrainResult:
    """``forethought train distill-proposer``."""
    overrides = given_options(args, "steps", "batch_size", "device", "lr")
    model, sample_batch, train_config, run_config = build_distillation_run(
        args.teacher, args.data, args.config, args.sources, args.seed, overrides, args.teacher_steps,
        args.student_steps, args.init_from, args.student_down_dims)
    widths = [] if args.student_down_dims is None else ["--student-down-dims", *map(str, args.student_down_dims)]
    run_config["command"] = run_command(
        ["forethought", "train", "distill-proposer", "--teacher", str(args.teacher), "--data", str(args.data),
         "--config", args.config, "--out", str(args.out), "--seed", str(args.seed), *widths],
        (("--steps", args.steps), ("--batch-size", args.batch_size), ("--device", args.device), ("--lr", args.lr),
         ("--teacher-steps", args.teacher_steps), ("--student-steps", args.student_steps),
         ("--init-from", args.init_from)))
    print(f"distilling {args.teacher} (DDIM {model.teacher_steps}) into a "
          f"{model.student.config.num_inference_steps}-step student on {run_config['windows']:,} observations")
    return train(model, sample_batch, train_config, args.out, run_config, resume=args.resume,
                 keep_checkpoints=args.keep_checkpoints)


TRAINER = ModelTrainer(train_distillation, PRESETS, add_arguments, sources=("expert", "play"))
"""The entry for ``forethought.models.cli_train.TRAINERS["distill-proposer"]``."""
