"""``forethought train dynamics`` and ``forethought adapt``: the dynamics ensemble through the shared trainer.

Examples::

    forethought collect --env forethought/PushBlocks-v0 --episodes 600 --noise 0.1 --play-fraction 0.5 \\
        --seed 0 --out data/dyn/pushblocks.parquet
    forethought train dynamics --data data/dyn/pushblocks.parquet --config pushblocks --sources expert play \\
        --out models/pretrained/dynamics-pushblocks --seed 0 --threads 1

Every member sees its own bootstrap resample of the training windows (drawn from
``(seed, member)``) and its own batch each step. The last ``VALIDATION_FRACTION`` of the
episodes is held out; ``OUT/diagnostics.json`` records its k-step error against copy-last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from forethought.models.dynamics.configuration_dynamics import PRESETS, DynamicsConfig, state_layout
from forethought.models.dynamics.metrics import kstep_errors
from forethought.models.dynamics.modeling_dynamics import DynamicsEnsemble
from forethought.models.dynamics.processor_dynamics import DynamicsNormalizer
from forethought.models.training import (ModelTrainer, TrainConfig, TrainResult, data_metadata, given_options,
                                         run_command, seed_everything, train)
from forethought.files import atomic_path
from forethought.sim.dataset import Dataset

VALIDATION_FRACTION = 0.1
DIAGNOSTICS_FILE = "diagnostics.json"
Batch = dict[str, torch.Tensor]


def window_tensors(ds: Dataset, model: DynamicsEnsemble, sources: Sequence[str] | None,
                   episodes: Sequence[int] | None = None) -> tuple[Batch, np.ndarray]:
    """Every window of the selected episodes: ``obs_history[B, o, S]``, ``actions[B, F, A]``,
    ``future_states[B, F, S]``, ``future_valid[B, F]``; and ``obs_valid[B, o]``."""
    w = ds.windows(model.n_obs_steps, model.horizon, future=model.horizon, sources=sources, episodes=episodes)
    if len(w) == 0:
        raise ValueError(f"{ds.path}: no steps from sources {list(sources or [])}; the data set has sources "
                         f"{sorted(set(ds.sources))}")
    return {"obs_history": torch.from_numpy(np.ascontiguousarray(w.obs_history)),
            "actions": torch.from_numpy(np.ascontiguousarray(w.actions)),
            "future_states": torch.from_numpy(np.ascontiguousarray(w.future_states)),
            "future_valid": torch.from_numpy(np.ascontiguousarray(w.future_valid))}, w.obs_valid


def bootstrap_sampler(windows: Batch, ensemble_size: int, batch_size: int, seed: int
                      ) -> Callable[[np.random.Generator], Batch]:
    """``sample_batch(rng)`` giving each member ``batch_size`` windows from its own bootstrap resample.

    Member ``k`` resamples the ``B`` windows with replacement from ``default_rng([seed, k])``.
    Batches are ``[K, batch_size, ...]``.
    """
    n = len(windows["obs_history"])
    boot = torch.from_numpy(np.stack([np.random.default_rng([seed, k]).integers(0, n, n)
                                      for k in range(ensemble_size)]))  # [K, B]

    def sample_batch(rng: np.random.Generator) -> Batch:
        pick = torch.from_numpy(rng.integers(0, n, (ensemble_size, batch_size)))  # [K, b]
        idx = torch.gather(boot, 1, pick)
        return {k: v[idx] for k, v in windows.items()}

    return sample_batch


def fit_normalizer(model: DynamicsEnsemble, windows: Batch, obs_valid: np.ndarray) -> DynamicsNormalizer:
    """Input and residual statistics of the training windows (``obs_valid[B, n_obs]``: real, not padded, history)."""
    obs, fut = windows["obs_history"], windows["future_states"]
    feats = model.features(obs)
    if model.n_obs_steps > 1:
        velocity, velocity_valid = feats["velocity"][:, -1].numpy(), obs_valid[:, -2]
    else:  # no history, no velocity input: placeholder statistics
        velocity, velocity_valid = np.zeros((len(obs), model.state_dim)), np.ones(len(obs), bool)
    features = {"state": obs[:, -1].numpy(), "velocity": velocity, "relative": feats["relative"].numpy(),
                "action": windows["actions"][:, 0].numpy(), "delta": (fut - obs[:, -1:]).numpy()}
    valid = {"velocity": velocity_valid, "delta": windows["future_valid"].numpy()}
    if model.object_core is not None:  # one object's inputs and residuals, pooled over the present slots
        slots = model.slots
        present = (obs[:, -1][:, slots[:, 0]] >= 0.5).numpy()  # [B, P]
        moved = (fut[..., slots[:, 1:]] - obs[:, -1:, slots[:, 1:]]).transpose(1, 2)  # [B, P, F, G - 1]
        features.update(object=model.object_features(obs, windows["actions"]).flatten(0, 1).numpy(),
                        object_delta=moved.flatten(0, 1).numpy())
        valid.update(object=present.reshape(-1),
                     object_delta=(present[:, :, None] & windows["future_valid"].numpy()[:, None, :]).reshape(-1, fut.shape[1]))
    return DynamicsNormalizer.fit(features, valid)


def build_dynamics_run(
    data: str | Path, preset_name: str, sources: list[str], seed: int, overrides: dict[str, Any] | None = None,
    model_overrides: dict[str, Any] | None = None,
) -> tuple[DynamicsEnsemble, Callable[[np.random.Generator], Batch], TrainConfig, dict[str, Any], list[int]]:
    """Model, batch sampler, train config, run config and the held-out episodes of one training run.

    ``overrides`` replace the preset's training settings, ``model_overrides`` its model sizes
    (e.g. ``{"ensemble_size": 1}``).
    """
    preset = PRESETS.lookup(preset_name)
    ds = Dataset.load(data)
    meta = ds.metadata
    layout = state_layout(meta.get("env_id"))
    train_config = TrainConfig.from_dict({**preset.train, "seed": seed, **(overrides or {})})
    n_val = max(1, int(round(ds.num_episodes * VALIDATION_FRACTION))) if ds.num_episodes > 1 else 0
    train_eps = list(range(ds.num_episodes - n_val))
    val_eps = list(range(ds.num_episodes - n_val, ds.num_episodes))
    seed_everything(seed)
    model = DynamicsEnsemble(DynamicsConfig(
        state_dim=ds.obs_dim, action_dim=ds.act_dim, passthrough_dims=layout.passthrough_dims,
        presence_groups=layout.presence_groups, relative_pairs=layout.relative_pairs, agent_position=layout.agent_position,
        action_low=meta.get("action_low"),
        action_high=meta.get("action_high"), env_id=meta.get("env_id"), **{**preset.model, **(model_overrides or {})},
    ))
    windows, obs_valid = window_tensors(ds, model, sources, train_eps)
    model.normalizer = fit_normalizer(model, windows, obs_valid)
    sample_batch = bootstrap_sampler(windows, model.ensemble_size, train_config.batch_size, seed)
    run_config = {
        "model": "dynamics",
        "preset": preset_name,
        "data": str(data),
        "data_metadata": data_metadata(ds.metadata),
        "sources": list(sources),
        "train_episodes": len(train_eps),
        "validation_episodes": len(val_eps),
        "windows": len(windows["obs_history"]),
        "dynamics": model.config.to_dict(),
    }
    return model, sample_batch, train_config, run_config, val_eps


def write_diagnostics(model: DynamicsEnsemble, data: str | Path, episodes: list[int] | None, sources: list[str] | None,
                      out: Path) -> dict[str, Any]:
    """Held-out k-step RMSE (model and copy-last) into ``out/diagnostics.json``."""
    model.eval()
    errors = kstep_errors(model, Dataset.load(data), sources=sources, episodes=episodes)
    diag = {"data": str(data), "episodes": episodes, "sources": sources, **errors}
    with atomic_path(out / DIAGNOSTICS_FILE) as tmp:
        tmp.write_text(json.dumps(diag, indent=2) + "\n")
    return diag


def summary_line(diag: dict[str, Any]) -> str:
    """``metric@k model (copy-last)`` for every metric and horizon."""
    return "; ".join(f"{g}@{k} {diag['model'][g][k]:.4f} ({diag['copy_last'][g][k]:.4f})"
                     for g in diag["model"] for k in diag["model"][g])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ensemble's own options of ``forethought train dynamics`` (beside ``cli_train``'s shared ones)."""
    parser.add_argument("--ensemble-size", type=int, help="override the preset's number of members K")
    parser.add_argument("--hidden-dim", type=int, help="override the preset's hidden width (both networks of a "
                        "relational ensemble)")
    parser.add_argument("--weight-decay", type=float, help="override the preset's AdamW weight decay")
    parser.add_argument("--horizon", type=int, help="override the steps predicted per network call")
    parser.add_argument("--rollout-horizon", type=int,
                        help="longest chunk a rollout takes, chaining calls beyond --horizon (default: --horizon)")


def train_dynamics(args: argparse.Namespace) -> TrainResult:
    """``forethought train dynamics`` (the arguments of ``forethought.models.cli_train``)."""
    overrides = given_options(args, "steps", "batch_size", "device", "weight_decay")
    model_overrides = given_options(args, "ensemble_size", "hidden_dim", "horizon", "rollout_horizon")
    model, sample_batch, train_config, run_config, val_eps = build_dynamics_run(
        args.data, args.config, args.sources, args.seed, overrides, model_overrides)
    run_config["command"] = run_command(
        ["forethought", "train", "dynamics", "--data", str(args.data), "--config", args.config, "--out", str(args.out),
         "--seed", str(args.seed), "--sources", *args.sources],
        (("--steps", args.steps), ("--batch-size", args.batch_size), ("--device", args.device),
         ("--weight-decay", args.weight_decay), ("--ensemble-size", args.ensemble_size),
         ("--hidden-dim", args.hidden_dim), ("--horizon", args.horizon),
         ("--rollout-horizon", args.rollout_horizon)))
    print(f"dynamics: {model.ensemble_size} members, {model.num_parameters:,} parameters "
          f"({model.num_parameters * 4 / 1e6:.2f} MB float32), {run_config['windows']:,} windows from {args.data}")
    result = train(model, sample_batch, train_config, args.out, run_config, resume=args.resume,
                   keep_checkpoints=args.keep_checkpoints)
    if val_eps:
        trained = DynamicsEnsemble.from_pretrained(args.out)  # the saved (EMA) weights
        diag = write_diagnostics(trained, args.data, val_eps, args.sources, Path(args.out))
        print(f"held out ({len(val_eps)} episodes), RMSE model (copy-last): {summary_line(diag)}")
    return result


TRAINER = ModelTrainer(train_dynamics, PRESETS, add_arguments, sources=("expert", "play"))
"""The entry for ``forethought.models.cli_train.TRAINERS["dynamics"]``; dynamics need broad action coverage."""


def adapt(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    train_config: TrainConfig,
    sources: list[str] | None = None,
    command: str | None = None,
) -> tuple[TrainResult, dict[str, Any]]:
    """Fine-tune every member of the ensemble in ``model_dir`` on ``data``; write the result to ``out``.

    The normaliser is kept (the weights were trained against it) and each member draws its own
    bootstrap resample. The run goes to a temporary sibling of ``out`` that is renamed onto
    ``out`` only when it is complete, so ``out`` never holds a partial model. Returns the
    trainer's result and the k-step error on ``data`` before and after.
    """
    out = Path(out)
    if out.exists():
        raise ValueError(f"--out {out} already exists: pick a new directory for the adapted model")
    model = DynamicsEnsemble.from_pretrained(model_dir, device=train_config.device)
    ds = Dataset.load(data)
    if (ds.obs_dim, ds.act_dim) != (model.state_dim, model.action_dim):
        raise ValueError(f"{data} has states of width {ds.obs_dim} and actions of width {ds.act_dim}, but the "
                         f"model in {model_dir} takes {model.state_dim} and {model.action_dim}")
    before = kstep_errors(model, ds, sources=sources)
    windows, _ = window_tensors(ds, model, sources)
    sample_batch = bootstrap_sampler(windows, model.ensemble_size, train_config.batch_size, train_config.seed)
    run_config = {"model": "dynamics", "adapted_from": str(model_dir), "data": str(data),
                  "data_metadata": data_metadata(ds.metadata), "sources": sources, "windows": len(windows["obs_history"]),
                  "dynamics": model.config.to_dict(), "command": command}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        seed_everything(train_config.seed)
        result = train(model, sample_batch, train_config, tmp, run_config)
        adapted = DynamicsEnsemble.from_pretrained(tmp)
        errors = {"before": before, "after": kstep_errors(adapted, ds, sources=sources)}
        with atomic_path(tmp / DIAGNOSTICS_FILE) as f:
            f.write_text(json.dumps({"data": str(data), "train": asdict(train_config), **errors}, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result, errors
