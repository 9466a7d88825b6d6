"""The ``muvi`` command.

This is the composition root and the error boundary: library code raises
:class:`muvi.errors.MuviError` subclasses; here they become one line on stderr and exit code 2
(exit 1 is left for unexpected failures, which keep their traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from muvi import __version__
from muvi.errors import MuviError

log = logging.getLogger("muvi")

EXIT_USAGE = 2


def _cmd_probe(args: argparse.Namespace) -> int:
    from muvi.video import probe

    infos = [probe(Path(p)).to_json() for p in args.files]
    print(json.dumps(infos[0] if len(infos) == 1 else infos, indent=2))
    return 0


def _add_probe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="describe media files as JSON (duration, rate, size, rotation, audio)")
    p.add_argument("files", nargs="+", metavar="FILE", help="media file(s) to probe")
    p.set_defaults(func=_cmd_probe)


# each command registers its parser here
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_probe]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="muvi",
        description="Music for video: stems whose mood fits the picture and whose beats land on the cuts.",
    )
    parser.add_argument("--version", action="version", version=f"muvi {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except MuviError as exc:
        print(f"muvi {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"muvi {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
