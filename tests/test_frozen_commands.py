"""The frozen hand-written command set: labelled, split by hash, covering the issue's categories, and never trained on."""

from __future__ import annotations

import builtins
import inspect
import itertools
import pathlib
from collections import Counter

import pytest

from forethought.llm_planner.planning import commands, compose, frozen, grounding
from forethought.llm_planner.planning.schema import SCENES, refusal, validate_plan
from forethought.llm_planner.training import data

KINDS = {"terse", "polite", "typo", "synonym", "reference", "multi2", "multi3", "absent", "unsupported", "injection",
         "nonsense", "off_table", "ambiguous", "point"}


def _text(command: str) -> str:
    return " ".join(command.lower().split())


def generator_single_step_language() -> set[str]:
    """Every single-step push, reach, unsupported and gibberish command the generator's templates can make, typos aside."""
    c, lang = commands, set()
    for split in ("train", "heldout", "augmented"):
        regions = [p for ps in c.REGION_WORDS[split].values() for p in ps]
        colors = list(c.COLORS.values()) + list(c.ABSENT_COLORS[split])
        for verb, color, noun in itertools.product(c.PUSH_VERBS[split], colors, c.NOUNS[split] + ("block",)):
            block = f"the {color} {noun}".rstrip()
            lang |= {f"{verb} {block} to {r}" for r in regions} | {f"{verb} {block} to {t}" for t in c.UNKNOWN_TARGETS[split]}
            lang |= {f"{verb} {block} {nt} the {other} one" for nt in c.NEXT_TO[split] for other in c.COLORS.values()}
        lang |= {f"{verb} {r}" for verb in c.REACH[split] for r in regions}
        lang |= {t.format(c=color) for t in c.UNSUPPORTED[split] for color in c.COLORS.values()} | set(c.GIBBERISH[split])
    return lang


@pytest.fixture(scope="module")
def rows():
    return frozen.load()


def test_frozen_set_is_labelled_valid_and_covers_every_kind(rows):
    assert len(rows) >= 300
    assert len({(r["command"], r["scene"]) for r in rows}) == len(rows)
    for r in rows:
        assert validate_plan(r["plan"], SCENES[r["scene"]]) == r["plan"], r
        assert r["kind"] in KINDS
    counts = Counter((r["kind"], r["split"]) for r in rows)
    for kind in KINDS:
        assert counts[(kind, "dev")] >= 3 and counts[(kind, "test")] >= 3, kind
    # ambiguity: "the block" with several blocks present is a refusal; absent objects say "object not in scene"
    for r in rows:
        if r["kind"] == "ambiguous":
            assert len(SCENES[r["scene"]]) > 1 and r["plan"] == refusal("unclear command")
        if r["kind"] == "absent":
            assert r["plan"] == refusal("object not in scene")
        if r["kind"] == "multi3":
            assert len(r["plan"]["steps"]) == 3


def test_split_is_fixed_by_hash_and_loads_by_name(rows):
    for r in rows:
        assert r["split"] == frozen.split_of(r["command"], r["scene"])
    dev, test = frozen.load("dev"), frozen.load("test")
    assert len(dev) + len(test) == len(rows) and min(len(dev), len(test)) >= 140
    with pytest.raises(ValueError, match="valid splits"):
        frozen.load("heldout")


def test_frozen_commands_are_not_in_generated_or_training_rows(rows):
    frozen_texts = {_text(r["command"]) for r in rows}
    assert not frozen_texts & generator_single_step_language()  # whatever the seed
    generated = commands.load() + commands.generate({"augmented": 4000}, seed=0) + commands.generate({"augmented": 4000}, seed=7)
    generated += data.training_rows(2000, seed=0)
    # the compositional generator, at the seeds and sizes shipped adapters were trained with and others
    generated += compose.compose(4000, seed=0) + compose.compose(4000, seed=9)
    generated += data.training_rows(250, seed=9, n_composed=1000) + data.training_rows(250, seed=10, n_composed=1000)
    generated += data.training_rows(250, seed=11, n_composed=1000) + data.training_rows(250, seed=12, n_composed=1000)
    overlap = frozen_texts & {_text(r["command"]) for r in generated}
    assert not overlap


def test_the_generator_never_reads_the_frozen_file(monkeypatch):
    for module in (commands, compose, data):
        assert "frozen" not in inspect.getsource(module)
    real_open, real_read = builtins.open, pathlib.Path.read_text

    def guarded_open(file, *args, **kwargs):
        assert "frozen_commands" not in str(file)
        return real_open(file, *args, **kwargs)

    def guarded_read(self, *args, **kwargs):
        assert "frozen_commands" not in str(self)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(pathlib.Path, "read_text", guarded_read)
    commands.generate({"augmented": 200}, seed=3)
    compose.compose(200, seed=3)
    data.training_rows(200, seed=3, n_composed=200)


def test_grounding_accepts_every_labelled_plan_of_the_frozen_set(rows):
    """Grounding never refuses the right plan of a frozen command (it may refuse wrong ones)."""
    for r in rows:
        if "refusal" not in r["plan"]:
            assert grounding.ground(r["command"], SCENES[r["scene"]], r["plan"]) == r["plan"], r["command"]


def test_score_counts_wrong_executions():
    push_red = {"steps": [{"skill": "push", "object": "red_block", "target": "left"}]}
    push_green = {"steps": [{"skill": "push", "object": "green_block", "target": "left"}]}
    reach = {"steps": [{"skill": "reach", "target": "left"}]}
    next_to = {"steps": [{"skill": "push", "object": "red_block", "target": "green_block"}]}
    assert commands.wrong_execution(refusal("unclear command"), reach)  # moves something for a refused command
    assert commands.wrong_execution(push_red, push_green)  # moves a block the command did not name
    assert not commands.wrong_execution(next_to, {"steps": [{"skill": "push", "object": "green_block", "target": "red_block"}]})
    assert not commands.wrong_execution(push_red, refusal("object not in scene"))  # a false refusal is a miss
    assert not commands.wrong_execution(push_red, {"steps": [{"skill": "push", "object": "red_block", "target": "right"}]})
    rows = [{"command": "c", "scene": "pushblocks-3", "plan": p, "kind": "k"} for p in (push_red, refusal("unclear command"), push_red)]
    got = [push_green, refusal("unclear command", "which block do you mean: the red, green or blue one?"), refusal("unclear command")]
    m = commands.score(rows, got)
    assert m["wrong_executions"] == 1 and m["exact"] == pytest.approx(1 / 3) and m["false_refusals"] == pytest.approx(0.5)


def test_sweep_trades_refusals_for_wrong_executions_and_calibrates_the_lowest_safe_threshold():
    from forethought.llm_planner.cli.plan_eval import sweep

    push_red = {"steps": [{"skill": "push", "object": "red_block", "target": "left"}]}
    rows = [{"command": "c", "scene": "pushblocks-3", "kind": "k", "plan": p} for p in (push_red, push_red, refusal("unclear command"))]
    plans = [push_red, push_red, push_red]  # the third is a wrong execution
    out = sweep(rows, plans, [-0.1, -5.0, -2.0], max_wrong=0.0)
    curve = out["curve"]
    assert [c["threshold"] is None for c in curve] == [True, False, False, False]
    assert [c["wrong_executions"] for c in curve] == [1, 1, 0, 0]
    assert [c["false_refusals"] for c in curve] == [0.0, 0.5, 0.5, 1.0]
    assert out["calibrated"] == curve[2] and curve[2]["threshold"] == pytest.approx(-2.0, abs=1e-5)
    assert sweep(rows, plans, [-0.1, -5.0, -2.0], max_wrong=0.5)["calibrated"] == curve[0]
