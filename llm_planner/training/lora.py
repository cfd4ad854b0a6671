"""A minimal LoRA for Hugging Face Llama-style models: train low-rank updates, save them, merge them.

``W' = W + (alpha / r) B A`` with ``A[r, in]`` and ``B[out, r]`` (B starts at zero, so training
starts from the base model). Adapters are stored as safetensors (``adapter.safetensors``, keys
``<module path>.lora_a`` / ``.lora_b``) next to ``adapter_config.json``; ``merge_adapter`` folds
them into the base weights at load time, so inference costs nothing extra.

No peft dependency: the planner needs only linear layers of chosen decoder layers.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from forethought.files import atomic_path

WEIGHTS = "adapter.safetensors"
CONFIG = "adapter_config.json"
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@dataclass
class LoraConfig:
    """Which linear layers get an adapter, and how it was trained.

    rank, alpha: ``r`` and ``alpha`` (the update is scaled by ``alpha / r``).
    layers: indices of the decoder layers adapted (``model.layers.<i>``).
    modules: linear layers inside each decoder layer, from ``LINEARS``.
    base: name of the base model the adapter was trained on (checked loosely: shapes must fit).
    prompt_style: the prompt style it was trained with (``planning.prompts.STYLES``).
    """

    rank: int = 16
    alpha: float = 32.0
    layers: list[int] = field(default_factory=list)
    modules: list[str] = field(default_factory=lambda: list(LINEARS))
    base: str = ""
    prompt_style: str = "compact"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        unknown = set(self.modules) - set(LINEARS)
        if unknown:
            raise ValueError(f"unknown LoRA modules {sorted(unknown)}: valid ones are {list(LINEARS)}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def paths(self) -> list[str]:
        return [f"model.layers.{i}.{m}" for i in self.layers for m in self.modules]


class LoRALinear(nn.Module):
    """``base(x) + scale * x A^T B^T`` with a frozen ``base``; ``x[..., in]`` → ``[..., out]``."""

    def __init__(self, base: nn.Linear, rank: int, scale: float) -> None:
        super().__init__()
        self.base = base
        self.scale = scale
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


def _parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    head, _, name = path.rpartition(".")
    try:
        parent = model.get_submodule(head)
    except AttributeError as e:
        raise ValueError(f"the model has no module {head!r}: is the adapter meant for this base model?") from e
    if not isinstance(getattr(parent, name, None), (nn.Linear, LoRALinear)):
        raise ValueError(f"{path!r} is not a linear layer of this model")
    return parent, name


def add_lora(model: nn.Module, config: LoraConfig) -> list[nn.Parameter]:
    """Freeze ``model``, wrap the configured linears in ``LoRALinear``; return the trainable parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for path in config.paths():
        parent, name = _parent(model, path)
        wrapped = LoRALinear(getattr(parent, name), config.rank, config.scale)
        setattr(parent, name, wrapped)
        params += [wrapped.lora_a, wrapped.lora_b]
    return params


def save_adapter(model: nn.Module, config: LoraConfig, out: str | Path) -> None:
    """Write the adapter factors of a model prepared by ``add_lora`` to ``out/``."""
    out = Path(out)
    tensors = {}
    for path in config.paths():
        module = model.get_submodule(path)
        tensors[f"{path}.lora_a"] = module.lora_a.detach().float().contiguous()
        tensors[f"{path}.lora_b"] = module.lora_b.detach().float().contiguous()
    with atomic_path(out / WEIGHTS) as tmp:  # a crash never leaves a half-written adapter file
        save_file(tensors, str(tmp))
    with atomic_path(out / CONFIG) as tmp:
        tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")


def load_config(directory: str | Path) -> LoraConfig:
    path = Path(directory) / CONFIG
    if not path.is_file() or not (Path(directory) / WEIGHTS).is_file():
        raise ValueError(f"{directory} is no LoRA adapter: it needs {CONFIG} and {WEIGHTS}")
    return LoraConfig(**json.loads(path.read_text()))


@torch.no_grad()
def merge_adapter(model: nn.Module, directory: str | Path) -> LoraConfig:
    """Add ``scale * B A`` of the adapter in ``directory`` to the base weights of ``model`` (in place)."""
    config = load_config(directory)
    tensors = load_file(str(Path(directory) / WEIGHTS))
    for path in config.paths():
        parent, name = _parent(model, path)
        linear = getattr(parent, name)
        a, b = tensors[f"{path}.lora_a"], tensors[f"{path}.lora_b"]
        if b.shape[0] != linear.out_features or a.shape[1] != linear.in_features:
            raise ValueError(f"adapter {path} is {tuple(b.shape[:1]) + tuple(a.shape[1:])} but the model's layer is "
                             f"({linear.out_features}, {linear.in_features}): wrong base model")
        linear.weight += (config.scale * (b.double() @ a.double())).to(linear.weight.dtype)
    return config
