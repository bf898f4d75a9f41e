"""`recsys` command line: the composition root. Heavy imports happen inside each command.

Each command module exposes `add_commands(subparsers)`; modules listed here are imported cheaply
(their handlers import numpy/implicit/mlflow/bentoml lazily).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cli.common import EXIT_BAD_INPUT, one_line, stdout_closed

COMMAND_MODULES = (
    "cli.data",
    "cli.models",
    "cli.recipes",
    "cli.training",
    "cli.offers",
    "cli.serving",
    "cli.experiment",
    "cli.keys",
    "cli.bento",
    "cli.customers",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys", description="Grocery personalisation: data, models, serving."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from recsys.data.idmap import UnknownIdError
    from recsys.data.validation import ValidationError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return stdout_closed()
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (UnknownIdError, ValueError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as exc:
        from training.privacy import StoreUnavailable

        if not isinstance(exc, StoreUnavailable):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
