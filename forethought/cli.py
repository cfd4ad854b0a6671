"""The ``forethought`` command line: one verb per job.

Examples::

    forethought collect --env forethought/PushBlocks-v0 --episodes 100 --noise 0.1 \\
        --play-fraction 0.2 --seed 0 --out data/pushblocks.parquet
    forethought render --env forethought/PushBlocks-v0 --seed 3 --out push.mp4
    forethought run sim --video demo.mp4
"""

from __future__ import annotations

import argparse
import importlib
import sys

from forethought import __version__
from forethought.runtime import apply_defaults, check_onnxruntime_install

# verb -> (module implementing ``add_arguments(parser)`` and ``run(args) -> int``, help line)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("forethought.sim.collect", "record expert and play episodes into a dataset"),
    "render": ("forethought.sim.render", "roll out a policy and write an MP4 or GIF"),
    "run": ("forethought.ros_ws.runner", "start a node graph over rclpy without the ROS launch system"),
    "train": ("forethought.models.cli_train", "train a model (proposer, world-model, planner draft or LoRA)"),
    "eval": ("forethought.models.cli_eval", "closed-loop success rate, return and step time over fixed seeds"),
    "adapt": ("forethought.models.cli_adapt", "fine-tune the dynamics ensemble on data from a changed world"),
    "export": ("forethought.models.cli_export", "write a proposer, dynamics or world-model graph as ONNX"),
    "plan": ("forethought.llm_planner.cli.plan", "turn task commands into schema-valid plans (AR/SD/SSD decoding)"),
    "plan-eval": ("forethought.llm_planner.cli.plan_eval", "planner accuracy on the labelled command set (valid, exact, refusals)"),
    "generate": ("forethought.llm_planner.cli.generate", "run the AR/SD/SSD decoding engine on any local model pair"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per verb.

    Only the module of ``verb`` (the one being run) is imported to fill in its arguments, so
    ``forethought --help`` stays fast and one verb's heavy imports never slow down another.
    """
    parser = argparse.ArgumentParser(prog="forethought", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"forethought {__version__}")
    sub = parser.add_subparsers(dest="_verb", metavar="COMMAND")  # not "command": verbs take a --command / command
    for name, (module, help_line) in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        p.set_defaults(_module=module)
        if name == verb:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``forethought`` console script."""
    apply_defaults()
    check_onnxruntime_install()
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb)
    args = parser.parse_args(argv)
    if args._verb is None:
        parser.print_help()
        return 0
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
