"""``python cli.py COMMAND``: the ``flowline`` command (commands/, docs/cli.md) for those who run
it from the repository without installing it (`make run`, the Docker image)."""

from __future__ import annotations

from commands import main

if __name__ == "__main__":
    main()
