"""The consoles every ``ixb`` command prints through: styled for people, plain for scripts.

rich wraps at 80 columns when its output is not a terminal (it cannot ask
a pipe how wide it is), which splits file paths and ids in the middle and
breaks grep and copy-paste. So when the stream is not a terminal, output
is never wrapped, never coloured and never highlighted: one record per
line, as a script expects. On a terminal rich does what it does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = ["console", "print_json_line"]


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that is plain unless that stream is a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(
        stderr=stderr,
        soft_wrap=True,  # a line is as long as it is
        no_color=True,
        highlight=False,
        emoji=False,
    )


def print_json_line(document: Any) -> None:
    """One JSON document on one line of stdout (JSON Lines), flushed for a reading pipe."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, sort_keys=False) + "\n")
    sys.stdout.flush()
