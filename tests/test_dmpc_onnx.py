"""onnxruntime for the whole D-MPC replan: the dynamics-ensemble export, ``forethought export`` and
``--policy-option backend=onnx`` (same chunks as torch for the same seed)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import forethought.sim.envs  # noqa: F401  (registers the forethought/* envs)
from forethought import cli
from forethought.models.control.policy import DMPCPolicy
from forethought.models.dynamics import DynamicsEnsemble
from forethought.models.dynamics.onnx_ensemble import (EnsembleRollout, OnnxEnsemble, example_inputs,
                                                       export_ensemble)
from forethought.models.evaluation import PolicySpec
from forethought.models.onnx_session import CUDA_PROVIDERS
from forethought.models.proposer.modeling_proposer import DiffusionProposer
from forethought.models.proposer.onnx_denoiser import export_denoiser

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"
DYNAMICS, PROPOSER = PRETRAINED / "dynamics-pushblocks", PRETRAINED / "proposer-pushblocks"
ENV_ID = "forethought/PushBlocks-v0"
TOL = 1e-4


@pytest.fixture(scope="module")
def dynamics() -> DynamicsEnsemble:
    return DynamicsEnsemble.from_pretrained(DYNAMICS)


@pytest.fixture(scope="module")
def exported(dynamics: DynamicsEnsemble, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_ensemble(dynamics, tmp_path_factory.mktemp("onnx") / "dynamics.onnx")


def real_histories(n_blocks: int, seeds: range) -> np.ndarray:
    """``[len(seeds), 2, 16]``: the first two observations of PushBlocks episodes (random actions between)."""
    env = gym.make(ENV_ID, n_blocks=n_blocks)
    out = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        nxt = env.step(env.action_space.sample())[0]
        out.append(np.stack([obs, nxt]))
    env.close()
    return np.asarray(out, dtype=np.float32)


@pytest.mark.parametrize("batch", [1, 64])
def test_ensemble_graph_matches_torch_on_random_inputs(dynamics: DynamicsEnsemble, exported: Path, batch: int) -> None:
    ensemble = OnnxEnsemble(exported, threads=1)
    inputs = example_inputs(dynamics, batch, seed=batch)
    with torch.no_grad():
        ref = EnsembleRollout(dynamics)(*inputs.values())
    got = ensemble.run(*(v.numpy() for v in inputs.values()))
    K, F, S = dynamics.ensemble_size, dynamics.max_horizon, dynamics.state_dim
    assert got.shape == (batch, K, F, S) and got.dtype == np.float32
    assert np.abs(got - ref.numpy()).max() <= TOL


@pytest.mark.parametrize("n_blocks", [1, 3])
def test_onnx_rollout_matches_torch_on_real_observations(dynamics: DynamicsEnsemble, exported: Path,
                                                         n_blocks: int) -> None:
    """Real PushBlocks states and the shipped proposer's chunks; also shorter chunks (padded in the graph)."""
    proposer = DiffusionProposer.from_pretrained(PROPOSER)
    dyn = DynamicsEnsemble.from_pretrained(DYNAMICS)
    dyn.load_onnx(exported, threads=1)
    task = {"skill": "push", "object": "red_block", "target": "left"}
    for hist in real_histories(n_blocks, range(3)):
        actions = proposer.propose(hist, 16, goal=task, generator=torch.Generator().manual_seed(0),
                                   num_inference_steps=2)
        for f in (16, 10):
            dyn.backend = "torch"
            ref = dyn.rollout(hist, actions[:, :f])
            dyn.backend = "onnx"
            got = dyn.rollout(hist, actions[:, :f])
            assert got.shape == ref.shape == (dyn.ensemble_size, 16, f, 16)
            assert (got - ref).abs().max() <= TOL


def test_denoiser_onnx_matches_torch_on_real_observations(tmp_path: Path) -> None:
    proposer = DiffusionProposer.from_pretrained(PROPOSER)
    proposer.load_onnx(export_denoiser(proposer, tmp_path / "denoiser.onnx"), threads=1)
    for hist in real_histories(3, range(2)):
        for goal in ({"skill": "push", "object": "green_block", "target": "top_right"}, None):
            a = proposer.propose(hist, 8, goal, torch.Generator().manual_seed(3), 5, backend="torch")
            b = proposer.propose(hist, 8, goal, torch.Generator().manual_seed(3), 5, backend="onnx")
            assert (a - b).abs().max() <= TOL


def spec(backend: str) -> PolicySpec:
    return PolicySpec(model=PROPOSER, env_id=ENV_ID, observation_dim=16, action_dim=2, num_inference_steps=5,
                      action_steps=8, planner="ssr", dynamics=str(DYNAMICS),
                      options={"samples": "32", "backend": backend})


def test_dmpc_onnx_backend_picks_the_same_chunks_as_torch() -> None:
    """The same seed and observations: every replan's chosen chunk agrees to 1e-4."""
    torch_policy, onnx_policy = DMPCPolicy(spec("torch")), DMPCPolicy(spec("onnx"))
    assert onnx_policy.planner.proposer.backend == "onnx" and onnx_policy.dynamics.backend == "onnx"
    env = gym.make(ENV_ID, n_blocks=3)
    obs, _ = env.reset(seed=5)
    task = {"skill": "push", "object": "blue_block", "target": "center"}
    torch_policy.reset(task, seed=5)
    onnx_policy.reset(task, seed=5)
    for _ in range(24):  # three replans
        a, b = torch_policy.act(obs), onnx_policy.act(obs)
        assert np.abs(a - b).max() <= TOL
        obs = env.step(a)[0]
    env.close()
    assert len(onnx_policy.replan_ms) == 3


def test_backend_option_is_checked() -> None:
    with pytest.raises(ValueError, match="backend='tensorrt'"):
        DMPCPolicy(spec("tensorrt"))
    dyn = DynamicsEnsemble.from_pretrained(DYNAMICS)
    with pytest.raises(ValueError, match="load_onnx"):
        dyn.backend = "onnx"


@pytest.mark.parametrize(("name", "keep_bytes", "error", "match"), [
    ("none.onnx", None, FileNotFoundError, "forethought export --model DIR"),
    ("corrupt.onnx", 400, ValueError, "corrupt ONNX dynamics ensemble"),
])
def test_missing_or_corrupt_files_are_named(exported: Path, tmp_path: Path, name: str, keep_bytes: int | None,
                                            error: type[Exception], match: str) -> None:
    bad = tmp_path / name
    if keep_bytes is not None:
        bad.write_bytes(exported.read_bytes()[:keep_bytes])
    with pytest.raises(error, match=match) as info:
        DynamicsEnsemble.from_pretrained(DYNAMICS).load_onnx(bad)
    assert str(bad) in str(info.value)


def test_files_of_other_weights_configs_or_kinds_are_refused(exported: Path, tmp_path: Path) -> None:
    other = DynamicsEnsemble.from_pretrained(DYNAMICS)
    with torch.no_grad():
        other.core.weights[0][0, 0, 0] += 1e-3
    with pytest.raises(ValueError, match="other weights") as info:
        other.load_onnx(exported)
    assert str(exported) in str(info.value)
    with pytest.raises(ValueError, match=r"another dynamics config .*ensemble_size"):
        DynamicsEnsemble.from_pretrained(DYNAMICS).member(0).load_onnx(exported)
    denoiser = export_denoiser(DiffusionProposer.from_pretrained(PROPOSER), tmp_path / "denoiser.onnx")
    with pytest.raises(ValueError, match="not written by forethought's export_ensemble") as info:
        DynamicsEnsemble.from_pretrained(DYNAMICS).load_onnx(denoiser)
    assert str(denoiser) in str(info.value)


def test_export_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.onnx"
    assert cli.main(["export", "--model", str(DYNAMICS), "--out", str(out)]) == 0
    assert "max |torch - onnxruntime|" in capsys.readouterr().out
    DynamicsEnsemble.from_pretrained(DYNAMICS).load_onnx(out)  # accepted by its loader
    bad = tmp_path / "bad"
    shutil.copytree(DYNAMICS, bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({"type": "llama"}))
    for folder, message in ((tmp_path / "absent", "missing"), (bad, "corrupt"), (wrong, "has type 'llama'")):
        assert cli.main(["export", "--model", str(folder), "--out", str(tmp_path / "x.onnx")]) == 2
        err = capsys.readouterr().err
        assert message in err and str(folder) in err
    mismatched = tmp_path / "mismatched"
    shutil.copytree(DYNAMICS, mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps({**config, "hidden_dim": config["hidden_dim"] + 1}))
    assert cli.main(["export", "--model", str(mismatched), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "do not match" in capsys.readouterr().err


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this host has CUDA")
def test_cuda_request_without_cuda_logs_the_fallback(exported: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="forethought.models.onnx_session"):
        ensemble = OnnxEnsemble(exported, threads=1, providers=CUDA_PROVIDERS)
    assert ensemble.session.get_providers() == ["CPUExecutionProvider"]
    assert any("running on the CPU" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers() or not torch.cuda.is_available(),
                    reason="needs onnxruntime-gpu (the gpu extra) and a CUDA device")
def test_cuda_provider_matches_torch(dynamics: DynamicsEnsemble, exported: Path) -> None:
    ensemble = OnnxEnsemble(exported, threads=1, providers=CUDA_PROVIDERS)
    assert ensemble.session.get_providers()[0] == "CUDAExecutionProvider"
    inputs = example_inputs(dynamics, 64)
    with torch.no_grad():
        ref = EnsembleRollout(dynamics)(*inputs.values())
    assert np.abs(ensemble.run(*(v.numpy() for v in inputs.values())) - ref.numpy()).max() <= TOL
    policy = DMPCPolicy(PolicySpec(**{**spec("onnx").__dict__, "device": "cuda"}))
    assert policy.dynamics.onnx_rollout.session.get_providers()[0] == "CUDAExecutionProvider"
