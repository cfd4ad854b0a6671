"""ONNX export of the world model's latent rollout: onnxruntime matches torch, plans are the same on
both backends, and mismatched, missing or corrupt files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.models.evaluation import PolicySpec, evaluate
from forethought.models.world_model import LatentWorldModel, WorldModelConfig
from forethought.models.world_model.eval_policy import LatentPlannerEvalPolicy
from forethought.models.world_model.latent_planner import LatentCEM, LatentMPPI
from forethought.models.world_model.onnx_rollout import (
    OnnxRollout,
    example_inputs,
    export_rollout,
    main,
    max_abs_difference,
)

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

STATE_MODEL = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "wm-pushblocks-state"
TOL = 1e-4


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[LatentWorldModel, Path]:
    model = LatentWorldModel.from_pretrained(STATE_MODEL)
    return model, export_rollout(model, tmp_path_factory.mktemp("wm-onnx") / "state.onnx", horizon=5)


def tiny_model(seed: int, **overrides) -> LatentWorldModel:
    torch.manual_seed(seed)
    config = WorldModelConfig(**{"obs_dim": 4, "action_dim": 2, "action_low": (-1, -1), "action_high": (1, 1),
                                 "embed_dim": 8, "encoder_hidden": 16, "projector_hidden": 16,
                                 "predictor_hidden": 16, "predictor_blocks": 1, "action_embed_dim": 8,
                                 "sigreg_slices": 16, **overrides})
    model = LatentWorldModel(config)
    for p in model.predictor.parameters():  # AdaLN-zero starts at zero modulation: make the graph non-trivial
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


@pytest.mark.parametrize("n", [1, 37, 300])
def test_rollout_matches_torch_for_any_batch(shipped: tuple[LatentWorldModel, Path], n: int) -> None:
    model, path = shipped
    rollout = OnnxRollout(path, threads=1)
    window, present, blocks = example_inputs(model, 5, n, seed=n)  # row 0 has a one-frame history
    with torch.no_grad():
        ref = model.rollout_window(window, present, blocks)
    got = rollout(window, present, blocks)
    assert got.shape == (n, 5, model.config.embed_dim) and got.dtype == torch.float32
    assert (got - ref).abs().max() <= TOL
    assert ref.abs().max() > 0.1  # the comparison is not between two near-zero outputs


@pytest.mark.parametrize("planner_cls", [LatentCEM, LatentMPPI])
def test_plans_are_the_same_on_both_backends(shipped: tuple[LatentWorldModel, Path], planner_cls: type) -> None:
    model, path = shipped
    model.load_onnx(path, threads=1)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-0.2, 0.2, (2, model.config.obs_dim)).astype(np.float32)  # a two-frame history
    goal = obs[-1] + np.float32(0.05)
    plans = [planner_cls(model, samples=64, elites=8, iterations=4, seed=3, backend=b).plan(obs, goal=goal)
             for b in ("torch", "onnx")]
    assert plans[0].shape == (25, model.config.action_dim)
    assert np.abs(plans[0] - plans[1]).max() <= 1e-3
    assert np.abs(plans[0]).max() > 0.0


def test_mismatched_missing_or_corrupt_files_are_refused(shipped: tuple[LatentWorldModel, Path],
                                                         tmp_path: Path) -> None:
    model, path = shipped
    with pytest.raises(ValueError, match="another world-model config"):
        tiny_model(0).load_onnx(path)
    a, b = tiny_model(0), tiny_model(1)
    export_rollout(a, tmp_path / "a.onnx", horizon=3)
    with pytest.raises(ValueError, match="other weights"):
        b.load_onnx(tmp_path / "a.onnx")
    a.load_onnx(tmp_path / "a.onnx")
    assert max_abs_difference(a, a.onnx_rollout) <= TOL
    with pytest.raises(ValueError, match="horizon of 3 blocks, the planner's is 5"):
        LatentCEM(a, backend="onnx")
    with pytest.raises(ValueError, match="re-export it with --horizon 5"):
        a.onnx_rollout(*example_inputs(a, 5))
    missing, corrupt = tmp_path / "none.onnx", tmp_path / "corrupt.onnx"
    corrupt.write_bytes(path.read_bytes()[:500])
    refusals = ((missing, FileNotFoundError, ""), (corrupt, ValueError, "corrupt ONNX world-model rollout "))
    for bad, error, says in refusals:
        with pytest.raises(error, match=says + str(bad)):  # the message names the file
            a.load_onnx(bad)
    with pytest.raises(ValueError, match="load_onnx"):
        LatentCEM(b, backend="onnx")
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        LatentCEM(b, backend="tensorrt")
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        export_rollout(a, tmp_path / "bad.onnx", horizon=0)


def test_module_entry_point_exports_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_model(2).save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "out" / "wm.onnx"
    assert main(["--model", str(tmp_path / "ckpt"), "--out", str(out), "--horizon", "2"]) == 0
    assert out.is_file() and "max |torch - onnxruntime|" in capsys.readouterr().out
    assert OnnxRollout(out, threads=1).horizon == 2
    assert main(["--model", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert str(tmp_path / "absent") in capsys.readouterr().err


def test_eval_policy_runs_on_onnxruntime() -> None:
    """``forethought eval --policy latent-cem --policy-option backend=onnx`` plans a reach on onnxruntime and
    takes the same actions as the torch backend."""
    spec = PolicySpec(model=STATE_MODEL, env_id="forethought/PushBlocks-v0", observation_dim=16, action_dim=2,
                      options={"samples": "32", "elites": "4", "iterations": "2"})
    reports = []
    for backend in ("torch", "onnx"):
        policy = LatentPlannerEvalPolicy(PolicySpec(**{**vars(spec), "options": {**spec.options, "backend": backend}}))
        assert policy.policy.planner.backend == backend
        reports.append(evaluate(policy, spec.env_id, [0], policy_name="latent-cem", env_kwargs={"n_blocks": 1},
                                task={"skill": "reach", "target": [0.1, 0.1]}))
    assert reports[0].per_episode[0].steps == reports[1].per_episode[0].steps > 0
    assert reports[0].per_episode[0].final_distance == pytest.approx(reports[1].per_episode[0].final_distance, abs=1e-3)
    with pytest.raises(ValueError, match="backend='tvm'"):
        LatentPlannerEvalPolicy(PolicySpec(**{**vars(spec), "options": {"backend": "tvm"}}))


def test_export_leaves_the_model_as_it_was(shipped: tuple[LatentWorldModel, Path], tmp_path: Path) -> None:
    model, path = shipped
    model.load_onnx(path, threads=1)
    attached = model.onnx_rollout
    model.train()
    export_rollout(model, tmp_path / "again.onnx", horizon=5)  # a model with a session attached exports too
    assert model.training and model.onnx_rollout is attached
    model.eval()
    assert OnnxRollout(tmp_path / "again.onnx").weights_sha256 == attached.weights_sha256
