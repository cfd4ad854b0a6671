"""The compositional training-command generator (``planning/compose.py``): valid, grounded, varied, seeded."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from forethought.llm_planner.planning import compose, grounding
from forethought.llm_planner.planning.schema import REFUSALS, SCENES, validate_plan
from forethought.llm_planner.training.data import held_out_words, training_rows


@pytest.fixture(scope="module")
def rows():
    return compose.compose(3000, seed=4)


def test_rows_are_valid_distinct_seeded_and_cover_every_kind(rows):
    assert len({(r["command"], r["scene"]) for r in rows}) == len(rows) == 3000
    for r in rows:
        assert validate_plan(r["plan"], SCENES[r["scene"]]) == r["plan"] and r["split"] == "train"
    kinds = Counter(r["kind"] for r in rows)
    assert set(kinds) == set(compose.KINDS) and min(kinds.values()) >= 30
    lengths = Counter(len(r["plan"]["steps"]) for r in rows)
    assert lengths[3] >= 400 and lengths[2] >= 400 and lengths[0] >= 500  # three-step plans and refusals, not only pushes
    assert {r["plan"].get("refusal") for r in rows} == set(REFUSALS) | {None}
    assert compose.compose(50, seed=4) == rows[:50]
    assert compose.compose(50, seed=5) != rows[:50]


def test_every_plannable_row_passes_grounding_unchanged(rows):
    """Labels agree with the grounding lexicon: the planner is never trained on a plan grounding would refuse."""
    for r in rows:
        if r["plan"]["steps"]:
            assert grounding.ground(r["command"], SCENES[r["scene"]], r["plan"]) == r["plan"], r["command"]


def test_references_and_unnamed_blocks_follow_the_scene(rows):
    later_same_block = [r for r in rows if len(r["plan"]["steps"]) > 1 and re.search(r"\b(it|same|that one)\b", r["command"].lower())]
    assert len(later_same_block) >= 200
    lone = [r for r in rows if r["kind"] == "ambiguous"]
    one_block = [r for r in lone if r["scene"] == "pushblocks-1"]
    assert one_block and all(r["plan"]["steps"][0]["object"] == "red_block" for r in one_block)  # "the block": the only one
    assert all(r["plan"] == {"steps": [], "refusal": "unclear command"} for r in lone if r["scene"] != "pushblocks-1")
    quantified = [r for r in rows if r["kind"] == "quantified" and r["scene"] != "pushblocks-1"]
    unnamed = [r for r in quantified if not re.search(r"\b(red|green|blue)\b", r["command"].lower())]
    assert len(unnamed) >= 60 and any(r["plan"]["steps"][-1]["skill"] == "reach" for r in unnamed)
    for r in unnamed:  # "both blocks" (+ maybe a reach): one push per present block, scene order, one target
        pushes = [s for s in r["plan"]["steps"] if s["skill"] == "push"]
        assert [s["object"] for s in pushes] == list(SCENES[r["scene"]]) and len({s["target"] for s in pushes}) == 1
    for r in quantified:  # "push red and blue to the right": one push per colour, in the command's order
        named = re.match(r"\w+ (?:the )?(red|green|blue)(?:, (red|green|blue),?)? and (red|green|blue)\b", r["command"].lower())
        if named:
            colors = [c for c in named.groups() if c]
            assert [s["object"] for s in r["plan"]["steps"][: len(colors)]] == [f"{c}_block" for c in colors]


def test_lists_move_a_different_block_in_each_step(rows):
    lists = [r for r in rows if r["kind"] == "list" and r["scene"] != "pushblocks-1"]
    assert len(lists) >= 150 and Counter(len(r["plan"]["steps"]) for r in lists)[3] >= 50
    for r in lists:
        pushed = [s["object"] for s in r["plan"]["steps"] if s["skill"] == "push"]
        assert len(pushed) == len(set(pushed)) >= 2
    # the verb written once: a later step starts with a block mention, not a verb
    assert sum(bool(re.search(r"(, |; | and )(the )?(red|green|blue) \w", r["command"].lower())) for r in lists) >= 50


def test_composed_training_rows_use_no_held_out_word_but_the_allowed_function_words():
    banned = held_out_words().difference(compose.ALLOWED_HELD_OUT)
    rows = training_rows(0, seed=2, n_composed=600)
    composed = [r for r in rows if r["kind"] in compose.KINDS]
    assert len(composed) >= 400
    assert not banned & {w for r in rows for w in re.findall(r"[a-z]+", r["command"].lower())}
