"""The plan schema: what the LLM planner may output in a scene, as a validator and as a grammar.

A plan is ``{"steps": [step, ...]}`` with steps exactly as the sim takes them
(``forethought.sim.scene.validate_step``), or ``{"steps": [], "refusal": reason}`` when the
command cannot be done in this scene. Reasons come from a closed set (``REFUSALS``) so that
refusals can be checked exactly; a refusal may carry a ``"detail"`` for people (what is missing, a
clarifying question), which ``grounding`` adds after decoding and the grammar never emits.

The grammar emits the canonical ``json.dumps`` spelling (``", "`` and ``": "`` separators); a
push never targets its own object; reach points have two decimals at most and lie inside the
workspace, so that everything the grammar admits passes ``validate_plan``.
"""

from __future__ import annotations

import json
from typing import Any

from forethought.sim.scene import BLOCK_NAMES, REGION_NAMES, WORKSPACE_HALF, scene_description, validate_step

from .grammar import Dfa, Pattern

REFUSALS: tuple[str, ...] = ("object not in scene", "unknown target", "unsupported action", "unclear command")
"""Why a command cannot be planned: a block it names is absent; its target is no region or block;
it asks for something other than push / reach; or it is empty, garbled or not a robot task."""

SCENES: dict[str, tuple[str, ...]] = {f"pushblocks-{n}": BLOCK_NAMES[:n] for n in (1, 2, 3)}
"""Named scenes: ``pushblocks-N`` holds the first N of red, green, blue blocks."""

MAX_STEPS = 6
MAX_DETAIL_CHARS = 300


def scene_blocks(scene: str) -> tuple[str, ...]:
    """The blocks present in a named scene; ``ValueError`` listing the names otherwise."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}: valid scenes are {list(SCENES)}")
    return SCENES[scene]


def refusal(reason: str, detail: str | None = None) -> dict[str, Any]:
    """``{"steps": [], "refusal": reason}``, with ``"detail"`` (an explanation for people) when given."""
    if reason not in REFUSALS:
        raise ValueError(f"unknown refusal reason {reason!r}: valid reasons are {list(REFUSALS)}")
    if detail is None:
        return {"steps": [], "refusal": reason}
    if not isinstance(detail, str) or not detail or len(detail) > MAX_DETAIL_CHARS:
        raise ValueError(f"a refusal detail must be a non-empty str of at most {MAX_DETAIL_CHARS} characters, got {str(detail)[:80]!r}")
    return {"steps": [], "refusal": reason, "detail": detail}


def validate_plan(plan: Any, present: tuple[str, ...] = BLOCK_NAMES) -> dict[str, Any]:
    """Check a plan against the scene and return a normalised copy; ``ValueError`` naming the problem."""
    if not isinstance(plan, dict) or not isinstance(plan.get("steps"), list):
        raise ValueError(f"a plan must be a dict with a 'steps' list, got {str(plan)[:80]!r}")
    extra = set(plan) - {"steps", "refusal", "detail"}
    if extra:
        raise ValueError(f"unexpected plan keys: {sorted(extra)}")
    if "refusal" in plan:
        if plan["steps"]:
            raise ValueError("a refusal must have no steps")
        return refusal(plan["refusal"], plan.get("detail"))
    if "detail" in plan:
        raise ValueError("only a refusal may carry a 'detail'")
    if not plan["steps"]:
        raise ValueError("a plan needs at least one step, or a refusal")
    if len(plan["steps"]) > MAX_STEPS:
        raise ValueError(f"a plan has at most {MAX_STEPS} steps, got {len(plan['steps'])}")
    return {"steps": [validate_step(s, present) for s in plan["steps"]]}


def plan_to_text(plan: dict[str, Any]) -> str:
    """The canonical spelling the grammar generates."""
    return json.dumps(plan)


def _numbers() -> list[str]:
    """Coordinates ``-?0.d[d]`` with ``|v| <= WORKSPACE_HALF`` (0.27)."""
    limit = round(WORKSPACE_HALF * 100)
    out = []
    for cents in range(limit + 1):
        text = f"{cents / 100:.2f}"
        out.append(text)
        if cents % 10 == 0:
            out.append(text[:-1])  # 0.1 as well as 0.10
    return out + ["-" + t for t in out]


def plan_dfa(present: tuple[str, ...] = BLOCK_NAMES, max_steps: int = MAX_STEPS) -> Dfa:
    """The automaton of every canonical plan text valid in a scene with blocks ``present``."""
    for b in present:
        validate_step({"skill": "push", "object": b, "target": "center"}, present)
    g = Pattern()
    num = _numbers()

    def step() -> tuple[int, int]:  # fresh NFA nodes on every call: fragments must not be shared
        pushes = [
            g.seq(
                g.lit(f'{{"skill": "push", "object": "{obj}", "target": "'),
                g.choice(list(REGION_NAMES) + [b for b in present if b != obj]),
                g.lit('"}'),
            )
            for obj in present
        ]
        reach_region = g.seq(g.lit('{"skill": "reach", "target": "'), g.choice(REGION_NAMES), g.lit('"}'))
        reach_point = g.seq(g.lit('{"skill": "reach", "target": ['), g.choice(num), g.lit(", "), g.choice(num), g.lit("]}"))
        return g.alt(pushes + [reach_region, reach_point])

    head, close = g.lit('{"steps": ['), g.lit("]}")
    first = step()
    g.seq(head, first)
    last_end = first[1]
    g.eps[last_end].append(close[0])
    for _ in range(max_steps - 1):
        sep, nxt = g.lit(", "), step()
        g.seq(sep, nxt)
        g.eps[last_end].append(sep[0])
        g.eps[nxt[1]].append(close[0])
        last_end = nxt[1]
    steps = (head[0], close[1])
    refuse = g.seq(g.lit('{"steps": [], "refusal": "'), g.choice(REFUSALS), g.lit('"}'))
    return g.compile(g.alt([steps, refuse]))


def describe_scene(present: tuple[str, ...]) -> str:
    """One-line scene description for the prompt, from ``forethought.sim.scene.scene_description``."""
    d = scene_description(present)
    return f"blocks: {', '.join(d['blocks']) or 'none'}; regions: {', '.join(d['regions'])}"
