"""Convert checkpoint folders saved before the models shared one configuration mechanism.

The dynamics ensemble was a diffusers ``ConfigMixin``: its ``config.json`` holds diffusers'
``_class_name`` and ``_diffusers_version`` keys and no ``type``, and ``train_config.json`` keeps a
copy of it under ``"dynamics"``. This rewrites both as a ``DynamicsConfig`` (``"type":
"dynamics_ensemble"``), atomically, then loads the folder to check it. The weights and the
normaliser statistics are not touched, so the model computes exactly what it did. Folders that
are already converted, and proposer and world-model folders (always dataclass configs), are
left as they are, so running the script twice changes nothing.

Usage::

    .venv/bin/python scripts/convert_checkpoints.py models/pretrained/*
    .venv/bin/python scripts/convert_checkpoints.py --check models/pretrained/*   # exit 1 if one needs converting
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from forethought.files import atomic_path
from forethought.models.checkpoint import CONFIG_FILE
from forethought.models.dynamics import DynamicsConfig, DynamicsEnsemble
from forethought.models.training import RUN_CONFIG_FILE

DIFFUSERS_KEYS: tuple[str, ...] = ("_class_name", "_diffusers_version")
"""What diffusers adds to a ``ConfigMixin``'s ``config.json``."""


def converted_config(data: Any) -> dict[str, Any] | None:
    """The ``DynamicsConfig`` dict of a diffusers-format dynamics config, or ``None`` if ``data`` is not one."""
    if not isinstance(data, dict) or data.get("_class_name") != "DynamicsEnsemble":
        return None
    return DynamicsConfig.from_dict({k: v for k, v in data.items() if k not in DIFFUSERS_KEYS}).to_dict()


def convert_folder(directory: Path, check_only: bool = False) -> list[Path]:
    """Convert the checkpoint in ``directory``; return the files that were (or, with ``check_only``, would be)
    rewritten. Raises ``ValueError`` naming the file for a config that cannot be converted."""
    config_path, run_path = directory / CONFIG_FILE, directory / RUN_CONFIG_FILE
    changed: list[Path] = []
    if not config_path.is_file():
        return changed
    try:
        config = converted_config(json.loads(config_path.read_text()))
    except ValueError as e:
        raise ValueError(f"cannot convert {config_path}: {e}") from e
    if config is not None:
        changed.append(config_path)
        if not check_only:
            with atomic_path(config_path) as tmp:
                tmp.write_text(json.dumps(config, indent=2) + "\n")
    if run_path.is_file():
        run = json.loads(run_path.read_text())
        try:
            dynamics = converted_config(run.get("dynamics"))
        except ValueError as e:
            raise ValueError(f"cannot convert the \"dynamics\" entry of {run_path}: {e}") from e
        if dynamics is not None:
            changed.append(run_path)
            if not check_only:
                with atomic_path(run_path) as tmp:  # as the trainer writes it
                    tmp.write_text(json.dumps({**run, "dynamics": dynamics}, indent=2, sort_keys=True) + "\n")
    if changed and not check_only:
        DynamicsEnsemble.from_pretrained(directory)  # the converted folder loads
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="checkpoint folders (others are skipped)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a folder needs converting")
    args = parser.parse_args(argv)
    pending = False
    for folder in args.folders:
        if not folder.is_dir():
            continue
        try:
            changed = convert_folder(folder, check_only=args.check)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        pending |= bool(changed)
        verb = "needs converting" if args.check else "converted"
        print(f"{folder}: " + (f"{verb} ({', '.join(p.name for p in changed)})" if changed else "up to date"))
    return 1 if args.check and pending else 0


if __name__ == "__main__":
    raise SystemExit(main())
