"""``python -m commands``: the ``flowline`` console script without installing it."""

from commands import main

main()
