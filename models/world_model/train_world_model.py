"""``forethought train world-model``: the SIGReg world model through the project's shared trainer.

Examples::

    forethought collect --env forethought/PushBlocks-v0 --episodes 400 --noise 0.1 --play-fraction 0.5 \\
        --seed 0 --out data/pushblocks-wm.parquet
    forethought train world-model --obs state --data data/pushblocks-wm.parquet --config state \\
        --sources expert play --out models/pretrained/wm-pushblocks-state --seed 0
    forethought train world-model --obs pixels --data data/pushblocks-wm.parquet --config pixels \\
        --sources expert play --out models/pretrained/wm-pushblocks-pixels --seed 0
    forethought train world-model --obs state --data data/pushblocks-wm.parquet --config state \
        --sources expert play --out runs/wm-more --seed 1 --steps 4000 --init models/pretrained/wm-pushblocks-state

The last ``VALIDATION_FRACTION`` of the episodes is held out. Besides the trainer's outputs the
run writes ``OUT/diagnostics.json`` (held-out prediction error against copy-last, SIGReg against
its ≈1.05 floor and 0.402 B collapse value, per-dimension std, effective rank, linear-probe R²,
and the training loss terms every ``log_every`` steps) and ``OUT/probe.safetensors`` (the linear
probe from latent to task state).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from forethought.models.training import (ModelTrainer, TrainConfig, TrainResult, data_metadata, given_options,
                                         run_command, seed_everything, train)
from forethought.models.world_model.configuration_world_model import OBS_TYPES, PRESETS, WorldModelConfig
from forethought.models.world_model.data import make_sequences, render_frames
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe
from forethought.models.world_model.processor_world_model import WorldModelProcessor
from forethought.files import atomic_path
from forethought.sim.dataset import Dataset

VALIDATION_FRACTION = 0.1
DIAGNOSTICS_FILE = "diagnostics.json"
DIAGNOSTIC_SAMPLES = 1024
"""Held-out sub-trajectories used for the diagnostics (and the probe's R²)."""


def build_world_model_run(
    data: str | Path,
    preset_name: str,
    sources: list[str],
    seed: int,
    overrides: dict[str, Any] | None = None,
    obs_type: str | None = None,
    progress: bool = True,
) -> tuple[LatentWorldModel, Callable[[np.random.Generator], dict[str, torch.Tensor]], TrainConfig, dict[str, Any],
           Callable[[LatentWorldModel, Path], dict[str, Any]]]:
    """Model, batch sampler, train config, run config, and the post-training ``finish(model, out)``.

    ``obs_type`` (``--obs``) must agree with the preset's observation type when both are given.
    """
    preset = PRESETS.lookup(preset_name)
    model_kwargs = dict(preset.model)
    if obs_type is not None and obs_type != model_kwargs.get("obs_type", "state"):
        raise ValueError(f"--obs {obs_type} contradicts --config {preset_name} (a {model_kwargs.get('obs_type')} "
                         f"preset); state presets: {_presets_of('state')}, pixel presets: {_presets_of('pixels')}")
    ds = Dataset.load(data)
    meta = ds.metadata
    if "action_low" not in meta or "action_high" not in meta:
        raise ValueError(f"{data}: metadata has no action_low/action_high (the action box); recollect the data")
    config = WorldModelConfig(obs_dim=ds.obs_dim, action_dim=ds.act_dim, action_low=meta["action_low"],
                              action_high=meta["action_high"], env_id=meta.get("env_id"), **model_kwargs)
    train_config = TrainConfig.from_dict({**preset.train, "seed": seed, **(overrides or {})})

    n_val = max(1, int(round(ds.num_episodes * VALIDATION_FRACTION))) if ds.num_episodes > 1 else 0
    train_eps = list(range(ds.num_episodes - n_val))
    val_eps = list(range(ds.num_episodes - n_val, ds.num_episodes))
    seq = make_sequences(ds, config.frameskip, config.num_frames, sources, train_eps)
    val = make_sequences(ds, config.frameskip, config.num_frames, sources, val_eps) if val_eps else seq
    if len(seq) == 0:
        raise ValueError(f"{data}: no {config.num_frames}-frame sub-trajectories ({config.frameskip} steps apart) in "
                         f"the training episodes of sources {sources}; collect longer episodes (e.g. --play-fraction 0.5)")
    if len(val) == 0:
        val = seq
    states = torch.from_numpy(np.array(ds.states))  # [N + E, S] (a writable copy)
    frames = torch.from_numpy(render_frames(ds, config.image_size, progress)) if config.obs_type == "pixels" else states
    rows, actions = torch.from_numpy(seq.rows), torch.from_numpy(seq.actions)
    batch_size = train_config.batch_size

    def sample_batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
        idx = torch.from_numpy(rng.integers(0, len(rows), batch_size))
        return {"obs": frames[rows[idx]], "actions": actions[idx]}

    seed_everything(seed)
    processor = WorldModelProcessor(config)
    deltas = None
    if config.state_weight > 0:  # every block transition in the training windows, once
        pairs = np.unique(np.stack([seq.rows[:, :-1].ravel(), seq.rows[:, 1:].ravel()], 1), axis=0)  # [M, 2]
        deltas = ds.states[pairs[:, 1]] - ds.states[pairs[:, 0]]
    processor.fit(ds.states[np.unique(seq.rows)], deltas)
    model = LatentWorldModel(config, processor)

    def finish(trained: LatentWorldModel, out: Path) -> dict[str, Any]:
        """Fit the probe and write ``probe.safetensors`` and ``diagnostics.json`` into ``out``."""
        pick = np.random.default_rng(seed).permutation(len(val))[:DIAGNOSTIC_SAMPLES]
        val_rows = torch.from_numpy(val.rows[pick])
        diag = trained.diagnostics(frames[val_rows].to(_device(trained)), torch.from_numpy(val.actions[pick]))
        train_rows = np.unique(seq.rows)[np.random.default_rng(seed).permutation(len(np.unique(seq.rows)))[:20_000]]
        probe = LinearProbe.fit(trained, frames[train_rows], states[train_rows])
        probe.save(out)
        r2 = probe.r2(trained, frames[val_rows[:, 0]], states[val_rows[:, 0]])
        diag["probe_r2"] = dict(zip(meta.get("obs_labels") or [str(i) for i in range(ds.obs_dim)], r2.tolist()))
        log = np.asarray(trained.loss_log, np.float64).reshape(-1, 4)
        every = train_config.log_every
        diag["train_terms_every"] = every
        diag["train_mse"] = [float(v) for v in _block_means(log[:, 0], every)]
        diag["train_sigreg"] = [float(v) for v in _block_means(log[:, 1], every)]
        if trained.config.rollout_weight > 0:
            diag["train_openloop_mse"] = [float(v) for v in _block_means(log[:, 2], every)]
        if trained.config.state_weight > 0:
            diag["train_state_readout"] = [float(v) for v in _block_means(log[:, 3], every)]
        with atomic_path(out / DIAGNOSTICS_FILE) as tmp:
            tmp.write_text(json.dumps(diag, indent=2) + "\n")
        return diag

    run_config = {
        "model": "world-model",
        "preset": preset_name,
        "data": str(data),
        "data_metadata": data_metadata(meta),
        "sources": list(sources),
        "train_episodes": len(train_eps),
        "validation_episodes": len(val_eps),
        "sequences": len(seq),
        "world_model": config.to_dict(),
    }
    return model, sample_batch, train_config, run_config, finish


def _presets_of(obs_type: str) -> list[str]:
    return sorted(k for k, p in PRESETS.items() if p.model.get("obs_type", "state") == obs_type)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _block_means(x: np.ndarray, every: int) -> np.ndarray:
    n = len(x) // every
    return x[: n * every].reshape(n, every).mean(axis=1) if n else x[:0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The world model's own option of ``forethought train world-model`` (beside ``cli_train``'s shared ones)."""
    parser.add_argument("--obs", choices=OBS_TYPES, help="observation type; must match --config")
    parser.add_argument("--init", type=Path, help="start from this world-model folder's weights and normalisation "
                        "statistics (its model config must equal the preset's): continue a finished run for "
                        "--steps more, under a fresh learning-rate schedule")


def init_from(model: LatentWorldModel, folder: str | Path) -> None:
    """Load a trained world-model folder's weights and statistics into ``model`` (same model config)."""
    trained = LatentWorldModel.from_pretrained(folder)
    theirs, ours = trained.config.to_dict(), model.config.to_dict()
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differ:
        raise ValueError(f"--init {folder}: its model config differs from the preset's in {differ}; "
                         "initialise from a model trained with the same --config and data")
    model.load_state_dict(trained.state_dict())


def train_world_model(args: argparse.Namespace) -> TrainResult:
    """``forethought train world-model`` (arguments of ``forethought.models.cli_train`` plus ``--obs``)."""
    overrides = given_options(args, "steps", "batch_size", "device")
    obs_type, init = getattr(args, "obs", None), getattr(args, "init", None)
    if init is not None and args.resume:
        raise ValueError("--init starts a new run from a finished model; --resume continues an unfinished one: "
                         "pass one of them")
    model, sample_batch, train_config, run_config, finish = build_world_model_run(
        args.data, args.config, args.sources, args.seed, overrides, obs_type
    )
    if init is not None:
        init_from(model, init)
        run_config["init"] = str(init)
    run_config["command"] = run_command(
        ["forethought", "train", "world-model"] + (["--obs", obs_type] if obs_type else []) + [
            "--data", str(args.data), "--config", args.config, "--out", str(args.out), "--seed", str(args.seed),
            "--sources", *args.sources],
        (("--steps", args.steps), ("--batch-size", args.batch_size), ("--device", args.device), ("--init", init)))
    print(f"world model ({model.config.obs_type}): {model.num_parameters:,} parameters "
          f"({model.num_parameters * 4 / 1e6:.2f} MB float32), {run_config['sequences']:,} sub-trajectories")
    result = train(model, sample_batch, train_config, args.out, run_config, resume=args.resume,
                   keep_checkpoints=args.keep_checkpoints)
    diag = finish(model, Path(args.out))
    print(f"held out: mse {diag['mse']:.4f} (copy-last {diag['copy_last_mse']:.4f}), SIGReg {diag['sigreg']:.2f} "
          f"(floor {diag['floor']:.2f}, collapse {diag['collapse']:.0f}), effective rank "
          f"{diag['effective_rank']:.1f} / {int(diag['dim'])}, std min {diag['std_min']:.2f}")
    return result


TRAINER = ModelTrainer(train_world_model, PRESETS, add_arguments, sources=("expert",))
"""The entry for ``forethought.models.cli_train.TRAINERS["world-model"]``."""
