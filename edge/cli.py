"""The `newsagg` command (the console script): the core's CLI, `newsagg.cli`, with what
only the edge may supply wired in: demo mode's upstream simulator (edge.demo)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from edge.demo import simulated
from newsagg import cli


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, demo_upstreams=simulated)


if __name__ == "__main__":
    sys.exit(main())
