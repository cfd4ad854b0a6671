"""LoRA adapters, training batches, batched decoding, and the shipped planner artifacts (adapter, draft)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from forethought.llm_planner.planning import commands
from forethought.llm_planner.training.data import Example, encode, pad_batch, training_rows
from forethought.llm_planner.training.lora import CONFIG, WEIGHTS, LoraConfig, add_lora, load_config, merge_adapter, save_adapter


def small_llama(seed: int) -> LlamaForCausalLM:
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def test_lora_starts_at_base_trains_and_merges_to_the_same_function(tmp_path):
    model, x = small_llama(0), torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        base = model(x).logits
    config = LoraConfig(rank=4, alpha=8, layers=[1, 2], modules=["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"])
    params = add_lora(model, config)
    assert len(params) == 2 * 2 * 3 and all(p.requires_grad for p in params)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    with torch.no_grad():
        assert torch.equal(model(x).logits, base)  # B starts at zero
    opt = torch.optim.SGD(params, lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        model(x, labels=x).loss.backward()
        opt.step()
    with torch.no_grad():
        tuned = model(x).logits
    assert not torch.allclose(tuned, base)
    save_adapter(model, config, tmp_path)
    assert load_config(tmp_path) == config
    fresh = small_llama(0)
    merge_adapter(fresh, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x).logits, tuned, atol=1e-5, rtol=1e-5)


def test_lora_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown LoRA modules"):
        LoraConfig(modules=["attn.qkv"])
    with pytest.raises(ValueError, match="no LoRA adapter"):
        load_config(tmp_path)
    model = small_llama(0)
    config = LoraConfig(rank=2, layers=[0], modules=["self_attn.q_proj"])
    add_lora(model, config)
    save_adapter(model, config, tmp_path)
    wider = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(ValueError, match="wrong base model"):
        merge_adapter(wider, tmp_path)
    shallow = small_llama(0)
    config.layers = [7]
    (tmp_path / CONFIG).write_text(json.dumps(config.__dict__))
    with pytest.raises(ValueError, match="no module"):
        merge_adapter(shallow, tmp_path)


def test_pad_batch_labels_predict_the_plan_and_eos(tokenizer):
    plan = {"steps": [{"skill": "reach", "target": "left"}]}
    short = encode(tokenizer, "go left", "pushblocks-1", plan, "compact")
    long = encode(tokenizer, "please go to the left side now", "pushblocks-3", plan, "fewshot")
    assert short.ids[-1] == tokenizer.eos_token_id and tokenizer.decode(short.ids[short.n_prompt : -1]) == json.dumps(plan)
    ids, attention, labels = pad_batch([short, long], pad_id=0)
    for b, e in enumerate([short, long]):
        n = len(e.ids)
        assert attention[b].sum() == n and torch.equal(ids[b, :n], torch.tensor(e.ids))
        kept = labels[b][labels[b] != -100].tolist()
        assert kept == e.ids[e.n_prompt :]  # the plan and EOS, nothing of the prompt
        assert labels[b, e.n_prompt - 1] == e.ids[e.n_prompt]  # position t predicts token t + 1
    assert isinstance(short, Example)


def test_training_rows_never_contain_a_held_out_command():
    rows = training_rows(300, seed=5)
    held = {(r["command"], r["scene"]) for r in commands.load("heldout")}
    assert len(rows) > 400 and all(r["split"] == "train" for r in rows)
    assert not held & {(r["command"], r["scene"]) for r in rows}
    assert len({(r["command"], r["scene"]) for r in rows}) == len(rows)


def test_plan_batch_equals_engine_greedy(planners):
    planner = planners["ar"]
    rows = commands.load("heldout")[:6] + commands.load("train")[:4]
    items = [(r["command"], r["scene"]) for r in rows] + [("", "pushblocks-1")]
    batched = planner.plan_batch(items, batch_size=4)
    for (command, scene), got in zip(items, batched):
        want = planner.plan(command, scene)
        assert got.plan == want.plan and got.text == want.text and got.tokens == want.tokens


# -- the shipped artifacts --------------------------------------------------------------------------

ADAPTER = Path(__file__).resolve().parent.parent / "models" / "pretrained" / "planner-lora-smollm2"
DRAFT = Path(__file__).resolve().parent.parent / "models" / "pretrained" / "draft-smollm2"


def test_shipped_draft_and_adapter_fit_the_embedded_target():
    from transformers import AutoConfig

    from forethought.llm_planner.decoding.language_model import ModelSpec, check_same_vocab, load_tokenizer, resolve_model_path
    from forethought.llm_planner.planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT

    assert Path(DEFAULT_ADAPTER) == ADAPTER and Path(DEFAULT_DRAFT) == DRAFT
    directory, gguf = resolve_model_path("smollm2")
    target_cfg = AutoConfig.from_pretrained(directory, gguf_file=gguf)
    target_tok = load_tokenizer("smollm2")

    # Draft: same vocabulary, small on disk, loads in float32, predicts plan text after a prompt.
    size = sum(f.stat().st_size for f in DRAFT.iterdir())
    assert size <= 10_000_000, f"draft is {size} bytes"
    draft = ModelSpec(path=str(DRAFT)).load()
    check_same_vocab(target_tok, draft.tokenizer, target_cfg.vocab_size, draft.vocab_size)
    assert next(draft.model.parameters()).dtype == torch.float32

    # Adapter: small, and every factor fits the target's layer shapes.
    config = load_config(ADAPTER)
    assert (ADAPTER / WEIGHTS).stat().st_size <= 5_000_000 and config.prompt_style == "compact"
    tensors = load_file(str(ADAPTER / WEIGHTS))
    d, kv = target_cfg.hidden_size, target_cfg.num_key_value_heads * target_cfg.head_dim
    out_features = {"q_proj": d, "k_proj": kv, "v_proj": kv, "o_proj": d, "gate_proj": target_cfg.intermediate_size,
                    "up_proj": target_cfg.intermediate_size, "down_proj": d}
    assert set(tensors) == {f"{p}.lora_{x}" for p in config.paths() for x in "ab"}
    for path in config.paths():
        a, b = tensors[f"{path}.lora_a"], tensors[f"{path}.lora_b"]
        assert a.shape[0] == b.shape[1] == config.rank
        assert b.shape[0] == out_features[path.rsplit(".", 1)[1]]
        assert a.shape[1] == (target_cfg.intermediate_size if path.endswith("down_proj") else d)
        assert b.abs().max() > 0  # trained
    assert max(config.layers) < target_cfg.num_hidden_layers


def test_command_set_held_out_templates_are_disjoint_from_train():
    for table in (commands.PUSH_VERBS, commands.NOUNS, commands.REACH, commands.NEXT_TO, commands.THEN, commands.ABSENT_COLORS,
                  commands.UNSUPPORTED, commands.UNKNOWN_TARGETS, commands.GIBBERISH, commands.POINT):
        assert set(table["train"]) <= set(table["augmented"])
        assert not set(table["augmented"]) & set(table["heldout"])
    assert commands.REGION_WORDS["augmented"].keys() == commands.REGION_WORDS["heldout"].keys()
    train = {r["command"] for r in commands.load("train")}
    assert not train & {r["command"] for r in commands.load("heldout")}


def test_augmented_training_rows_and_lexicon_use_no_held_out_word():
    from forethought.llm_planner.training.data import held_out_words

    held = held_out_words()
    assert {"nudge", "brick", "upper", "lower", "centre", "alongside", "after", "position", "joke"} <= held
    assert not held & {w for r in training_rows(400, seed=3) for w in re.findall(r"[a-z]+", r["command"])}
    assert not held & commands.lexicon()
