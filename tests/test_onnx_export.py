"""ONNX export of the proposer's denoiser: onnxruntime matches torch, and mismatched files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.models import DiffusionProposer, MinMaxNormalizer, ProposerConfig
from forethought.models.proposer.configuration_proposer import PRESETS
from forethought.models.proposer.onnx_denoiser import (
    DenoiserStep,
    OnnxDenoiser,
    PolyphaseUpsample,
    example_inputs,
    export_denoiser,
    main,
    max_abs_difference,
    reference_eps,
)

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

PUSH = {"skill": "push", "object": "red_block", "target": "left"}
TOL = 1e-4


def make_proposer(seed: int = 0, **overrides) -> DiffusionProposer:
    """A randomly initialised tiny PushBlocks proposer."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    config = ProposerConfig(**{**PRESETS["tiny"].model, **overrides})
    obs = torch.rand(100, config.obs_dim, generator=g) * 0.4 - 0.2
    actions = (torch.rand(100, config.action_dim, generator=g) * 2 - 1) * 0.25
    return DiffusionProposer(config, MinMaxNormalizer.fit(obs, actions)).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[DiffusionProposer, Path]:
    p = make_proposer()
    path = export_denoiser(p, tmp_path_factory.mktemp("onnx") / "denoiser.onnx")
    return p, path


@pytest.mark.parametrize(("batch", "shared"), [(1, False), (7, False), (7, True)])
def test_onnxruntime_matches_torch_on_the_same_inputs(exported: tuple[DiffusionProposer, Path], batch: int,
                                                      shared: bool) -> None:
    p, path = exported
    denoiser = OnnxDenoiser(path, threads=1)
    inputs = example_inputs(p, batch, seed=batch, shared=shared)
    ref = reference_eps(p, inputs)  # the proposer's own U-Net
    got = denoiser.run({k: v.numpy() for k, v in inputs.items()})
    assert got.shape == (batch, p.config.horizon, p.config.action_dim) and got.dtype == np.float32
    assert np.abs(got - ref.numpy()).max() <= TOL
    with torch.no_grad():  # the rewritten torch module computes the same function
        assert (DenoiserStep(p.unet, p.config.horizon)(*inputs.values()) - ref).abs().max() <= TOL
    # the unet-style call splits global_cond into obs_cond and goal itself (and passes a shared one once)
    cond = torch.cat([inputs["obs_cond"], inputs["goal"]], dim=-1).expand(batch, -1)
    eps = denoiser(inputs["sample"], inputs["timestep"][0], cond)
    with torch.no_grad():
        want = p.unet(inputs["sample"], inputs["timestep"][0], cond)
    assert torch.allclose(eps, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("shared", [False, True])
def test_sharded_sessions_compute_what_one_session_does(exported: tuple[DiffusionProposer, Path], shared: bool) -> None:
    """``threads=3`` on the CPU: three one-thread sessions split the batch (a shared conditioning row
    goes to each whole); the rows come back in order and equal one session's, bit for bit."""
    p, path = exported
    one, three = OnnxDenoiser(path, threads=1), OnnxDenoiser(path, threads=3)
    assert len(one.sessions) == 1 and len(three.sessions) == 3
    assert all(s.get_session_options().intra_op_num_threads == 1 for s in three.sessions)
    for batch in (5, 26):  # below MIN_SHARD_ROWS per part: one session; else 3 parts of 8-9 rows
        inputs = {k: v.numpy() for k, v in example_inputs(p, batch, seed=batch, shared=shared).items()}
        want, got = one.run(inputs), three.run(inputs)
        assert got.shape == want.shape == (batch, p.config.horizon, p.config.action_dim)
        assert np.array_equal(got, want)
        assert np.abs(got[1:] - got[:-1]).max() > 0  # the rows differ, so an order mix-up would show


def test_exported_conditioning_batch_is_its_own_axis(exported: tuple[DiffusionProposer, Path]) -> None:
    _, path = exported
    axes = {i.name: i.shape[0] for i in OnnxDenoiser(path, threads=1).session.get_inputs()}
    assert axes == {"sample": "batch", "timestep": "cond_batch", "obs_cond": "cond_batch", "goal": "cond_batch"}


def test_polyphase_upsample_is_the_transposed_convolution() -> None:
    torch.manual_seed(0)
    up = torch.nn.ConvTranspose1d(6, 6, 4, stride=2, padding=1)
    x = torch.randn(3, 6, 5)
    with torch.no_grad():
        got = PolyphaseUpsample(up)(x.unsqueeze(2)).squeeze(2)
        assert torch.allclose(got, up(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="kernel 4, stride 2, padding 1"):
        PolyphaseUpsample(torch.nn.ConvTranspose1d(6, 6, 3, stride=2, padding=1))


def test_horizon_must_survive_the_down_samplings() -> None:
    p = make_proposer()
    with pytest.raises(ValueError, match="not divisible"):
        DenoiserStep(p.unet, 15)


@pytest.mark.parametrize(("prediction_type", "tol"), [("sample", TOL), ("epsilon", 1e-3)])
def test_onnx_backend_proposals_match_torch(tmp_path: Path, prediction_type: str, tol: float) -> None:
    """Five DDIM steps on both backends. An untrained epsilon net's float rounding (~1e-6) is amplified
    by 1 / sqrt(alpha_bar) ~ 2000 in the first step's clean-sample estimate, so it gets 1e-3; the
    trained teacher meets 1e-4 (``test_dmpc_onnx.py``), as does a sample-predicting proposer here."""
    p = make_proposer(prediction_type=prediction_type)
    p.load_onnx(export_denoiser(p, tmp_path / "denoiser.onnx"), threads=1)
    h = np.random.default_rng(0).uniform(-0.2, 0.2, (p.config.n_obs_steps, p.config.obs_dim))
    for goal in (PUSH, None):
        a = p.propose(h, 16, goal=goal, generator=torch.Generator().manual_seed(1), num_inference_steps=5)
        b = p.propose(h, 16, goal=goal, generator=torch.Generator().manual_seed(1), num_inference_steps=5,
                      backend="onnx")
        assert b.shape == a.shape and b.dtype == torch.float32
        assert (a - b).abs().max() <= tol


def test_goal_free_proposer_exports_without_a_goal_input(tmp_path: Path) -> None:
    p = make_proposer(use_goal=False)
    path = export_denoiser(p, tmp_path / "nogoal.onnx")
    denoiser = OnnxDenoiser(path, threads=1)
    assert denoiser.input_names == ["sample", "timestep", "obs_cond"]
    assert max_abs_difference(p, denoiser) <= TOL


@pytest.mark.parametrize(("name", "keep_bytes", "error", "match"), [
    ("none.onnx", None, FileNotFoundError, r"export one with `python -m forethought\.models\.proposer\.onnx_denoiser"),
    ("corrupt.onnx", 500, ValueError, "corrupt ONNX denoiser"),
])
def test_missing_or_corrupt_files_are_named(exported: tuple[DiffusionProposer, Path], tmp_path: Path, name: str,
                                            keep_bytes: int | None, error: type[Exception], match: str) -> None:
    bad = tmp_path / name
    if keep_bytes is not None:
        bad.write_bytes(exported[1].read_bytes()[:keep_bytes])
    with pytest.raises(error, match=match) as info:
        make_proposer(seed=1).load_onnx(bad)
    assert str(bad) in str(info.value)


def test_files_of_other_weights_or_configs_are_refused(exported: tuple[DiffusionProposer, Path]) -> None:
    _, path = exported
    other = make_proposer(seed=1)
    with pytest.raises(ValueError, match="other weights"):
        other.load_onnx(path)
    with pytest.raises(ValueError, match=r"another proposer config .*down_dims"):
        make_proposer(down_dims=[16, 16], n_groups=4).load_onnx(path)
    with pytest.raises(ValueError, match="load_onnx"):
        other.propose(np.zeros((2, 16)), 2, backend="onnx")
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        other.propose(np.zeros((2, 16)), 2, backend="tensorrt")


def test_module_entry_point_exports_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_proposer().save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "out" / "p.onnx"
    assert main(["--model", str(tmp_path / "ckpt"), "--out", str(out)]) == 0
    assert out.is_file() and "max |torch - onnxruntime|" in capsys.readouterr().out
    assert main(["--model", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert str(tmp_path / "absent") in capsys.readouterr().err
