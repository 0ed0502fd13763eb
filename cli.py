"""``python cli.py COMMAND``: the ``flowline`` command (commands/, docs/cli.md) for those who run
it from the repository without installing it (`make run`, the Docker image)."""

from __future__ import annotations

from commands import get_app, main
from commands.stack import RUNNING_JOURNEYS, patch_statuses

app = get_app()

__all__ = ["RUNNING_JOURNEYS", "app", "main", "patch_statuses"]

if __name__ == "__main__":
    main()
