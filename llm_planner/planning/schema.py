"""The plan schema: what the LLM planner may output in a scene, as a validator and as a grammar.

A plan is ``{"steps": [step, ...]}`` with steps exactly as the sim takes them
(``forethought.sim.scene.validate_step``), or ``{"steps": [], "refusal": reason}`` when the
command cannot be done in this scene. Reasons come from a closed set (``REFUSALS``) so that
refusals can be checked exactly; a refusal may carry a ``"detail"`` for people (what is missing, a
clarifying question), which ``grounding`` adds after decoding and the grammar never emits.

``plan_dfa`` can also ask for given destinations in order and given blocks (``targets``, ``required``):
the grammar of a second decode that must do all of a command (``coverage``).

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


NUMBERS: frozenset[str] = frozenset(_numbers())


def point_text(xy: tuple[float, float]) -> str | None:
    """The canonical spelling of the reach point ``xy`` (``json.dumps``: ``"[-0.14, 0.2]"``) when the grammar admits it
    (on the table, two decimals at most), else ``None``."""
    text = json.dumps([float(v) for v in xy])
    return text if all(t in NUMBERS for t in text[1:-1].split(", ")) else None


NEXT_TO = "next to a block"
"""The item of a push to a block (``step_items``): what a "next to" phrase asks for."""
POINT = "a point"
"""What a step to a reach point goes to, for ``target_kind``."""


def target_kind(step: dict[str, Any]) -> str:
    """Where a step goes, as a command says it: its region or block, ``POINT`` for a reach point."""
    return POINT if isinstance(step["target"], list) else step["target"]


def step_items(step: dict[str, Any]) -> frozenset[str]:
    """What a step does that a command can ask for: the block it pushes, the region or block it goes to, and
    ``NEXT_TO`` when it pushes next to a block (a reach point is none of these)."""
    target = step["target"]
    items = {step["object"]} if step["skill"] == "push" else set()
    if isinstance(target, str):
        items |= {target, NEXT_TO} if target in BLOCK_NAMES else {target}
    return frozenset(items)


class _Steps:
    """The NFA of plans as ``(k, covered, node)``: ``node`` of a one-step template (``Pattern``), ``k`` steps done,
    ``covered`` the ``required`` items they did. A step ends at its template end node, which adds its items; with
    ``targets``, step ``k`` must go to ``targets[k]`` (``target_kind``) and the plan has ``len(targets)`` steps. The
    list closes once every required item is done. A step is entered only if the plan can still be finished after
    it (``_feasible``), so every live state leads to a whole plan. Nodes are made when first visited."""

    def __init__(self, present: tuple[str, ...], max_steps: int, targets: tuple[str, ...], required: frozenset[str],
                 skills: tuple[str | None, ...] = (), objects: tuple[str | None, ...] = (),
                 points: tuple[tuple[float, float] | None, ...] = ()) -> None:
        self.max_steps, self.targets, self.required = (len(targets) or max_steps), targets, required
        self.skills, self.objects = skills, objects
        self.points = tuple(p if p is None else point_text(p) for p in points)
        g = self.template = Pattern()
        self.root = g.lit("")[0]
        head = g.lit('{"steps": [')
        self.head, self.step_start, self.after, self.final = head[0], head[1], g.lit("")[0], g.lit("")[0]
        self.ends: dict[int, tuple[frozenset[str], str, str, str | None, str | None]] = {}  # end node -> (its items among
        # required, where it goes, skill, the block it pushes, the point's text for a written point)
        self.leads: dict[int, list[int]] = {}  # first node of a step or of its tail -> the end nodes it leads to
        self.feasible: dict[tuple[int, frozenset[str]], bool] = {}

        def end(step: dict[str, Any], point: str | None = None) -> int:
            key = (step_items(step) & required, target_kind(step), step["skill"], step.get("object"), point)
            node = next((n for n, k in self.ends.items() if k == key), None)
            if node is None:
                node = g.lit("")[0]
                self.ends[node] = key
            return node

        def branch(prefix: str, steps: list[dict[str, Any]], tail: Any) -> None:
            pre = g.lit(prefix)
            g.eps[self.step_start].append(pre[0])
            self.leads[pre[0]] = []
            for step in steps:
                frag = tail(step)
                g.eps[pre[1]].append(frag[0])
                g.eps[frag[1]].append(end(step))
                self.leads[frag[0]] = [end(step)]
                self.leads[pre[0]].append(end(step))

        def named(step: dict[str, Any]) -> tuple[int, int]:
            return g.lit(f'{step["target"]}"}}')

        for obj in present:
            branch(f'{{"skill": "push", "object": "{obj}", "target": "', [
                {"skill": "push", "object": obj, "target": t} for t in list(REGION_NAMES) + [b for b in present if b != obj]], named)
        branch('{"skill": "reach", "target": "', [{"skill": "reach", "target": r} for r in REGION_NAMES], named)
        num = _numbers()
        branch('{"skill": "reach", "target": [', [{"skill": "reach", "target": [0.0, 0.0]}],
               lambda _: g.seq(g.choice(num), g.lit(", "), g.choice(num), g.lit("]}")))
        for text in dict.fromkeys(p for p in self.points if p is not None):  # a written point, spelt out
            frag, last = g.lit(f'{{"skill": "reach", "target": {text}}}'), end({"skill": "reach", "target": [0.0, 0.0]}, text)
            g.eps[self.step_start].append(frag[0])
            g.eps[frag[1]].append(last)
            self.leads[frag[0]] = [last]
        sep, self.close = g.lit(", "), g.lit("]}")
        g.eps[sep[1]].append(self.step_start)
        self.sep = sep[0]
        g.eps[self.close[1]].append(self.final)
        refuse = g.seq(g.lit('{"steps": [], "refusal": "'), g.choice(REFUSALS), g.lit('"}'))
        g.eps[refuse[1]].append(self.final)
        g.eps[self.root] += [head[0], refuse[0]]
        self.eps, self.edges = _Lookup(self._eps), _Lookup(self._edges)

    def _done(self, k: int, covered: frozenset[str]) -> bool:
        return (k == len(self.targets) if self.targets else k >= 1) and covered == self.required

    def _may_end(self, k: int, covered: frozenset[str], end: int) -> bool:
        """Whether step ``k + 1`` may end at ``end`` (``k`` done before it, ``covered`` done) and the plan still be finished."""
        items, kind, skill, obj, point = self.ends[end]
        want = self.targets[k] if self.targets else kind
        want_skill, want_obj = (self.skills[k] if self.skills else None), (self.objects[k] if self.objects else None)
        want_point = self.points[k] if self.points else None
        return ((kind == want or want == NEXT_TO and kind in BLOCK_NAMES) and want_skill in (None, skill)
                and want_obj in (None, obj) and point == want_point and self._feasible(k + 1, covered | items))

    def _feasible(self, k: int, covered: frozenset[str]) -> bool:
        """Whether a plan with ``k`` steps done, ``covered`` items done, can still end as the grammar asks."""
        key = (k, covered)
        if key not in self.feasible:
            self.feasible[key] = self._done(k, covered) or k < self.max_steps and any(self._may_end(k, covered, e) for e in self.ends)
        return self.feasible[key]

    def _eps(self, node: tuple[int, frozenset[str], int]) -> list[tuple[int, frozenset[str], int]]:
        k, covered, n = node
        if n in self.ends:
            return [(k + 1, covered | self.ends[n][0], self.after)]
        if n == self.root:
            return [(k, covered, m) for m in self.template.eps[n] if m != self.head or self._feasible(0, frozenset())]
        if n == self.after:
            out = [(k, covered, self.sep)] if k < self.max_steps else []
            return out + [(0, frozenset(), self.close[0])] if self._done(k, covered) else out
        return [(k, covered, m) for m in self.template.eps[n] if m not in self.leads or any(self._may_end(k, covered, e) for e in self.leads[m])]

    def _edges(self, node: tuple[int, frozenset[str], int]) -> dict[str, list[tuple[int, frozenset[str], int]]]:
        k, covered, n = node
        return {ch: [(k, covered, m) for m in nxt] for ch, nxt in self.template.edges[n].items()}


class _Lookup:
    """``lookup[node]``: ``fn(node)``, computed once per node."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.memo = fn, {}

    def __getitem__(self, node: Any) -> Any:
        if node not in self.memo:
            self.memo[node] = self.fn(node)
        return self.memo[node]


def plan_dfa(present: tuple[str, ...] = BLOCK_NAMES, max_steps: int = MAX_STEPS, targets: tuple[str, ...] = (),
             required: frozenset[str] = frozenset(), refusal: bool = True, skills: tuple[str | None, ...] = (),
             objects: tuple[str | None, ...] = (), points: tuple[tuple[float, float] | None, ...] = ()) -> Dfa:
    """The automaton of every canonical plan text valid in a scene with blocks ``present``, of 1 to ``max_steps``
    steps; with ``targets``, of exactly ``len(targets)`` steps, step ``k`` going to ``targets[k]`` (``target_kind``:
    a region, a block, ``POINT``; ``NEXT_TO``: any block); its steps together do every item of ``required``
    (``step_items``); with ``skills``, ``objects`` and ``points`` (each parallel to ``targets``), step ``k`` has skill
    ``skills[k]``, pushes the block ``objects[k]`` and reaches the point ``points[k]`` (spelt by ``point_text``), each
    unless it is ``None``. A refusal is valid too, unless ``refusal=False`` and some plan is. ``targets``, ``skills``,
    ``objects``, ``points`` and ``required`` make the grammar of a second decode that must do what the first plan left out
    (``coverage.demand``); ``refusal=False`` that of a refusal the scene contradicts (``coverage.refutes_absence``)."""
    if len(targets) > max_steps:
        raise ValueError(f"need at most max_steps={max_steps} targets, got {len(targets)}")
    for name, values in (("skills", skills), ("objects", objects), ("points", points)):
        if values and len(values) != len(targets):
            raise ValueError(f"{name} must be parallel to targets: {len(values)} {name} for {len(targets)} targets")
    if any(p is not None and (targets[k] != POINT or point_text(p) is None) for k, p in enumerate(points)):
        raise ValueError(f"each point must belong to a {POINT!r} target and be spelt by the grammar, got {points}")
    for b in present:
        validate_step({"skill": "push", "object": b, "target": "center"}, present)
    nfa = _Steps(present, max_steps, tuple(targets), frozenset(required), tuple(skills), tuple(objects), tuple(points))
    start = nfa.root if refusal or not nfa._feasible(0, frozenset()) else nfa.head
    return Dfa(nfa, ((0, frozenset(), start), (0, frozenset(), nfa.final)))


def describe_scene(present: tuple[str, ...]) -> str:
    """One-line scene description for the prompt, from ``forethought.sim.scene.scene_description``."""
    d = scene_description(present)
    return f"blocks: {', '.join(d['blocks']) or 'none'}; regions: {', '.join(d['regions'])}"
