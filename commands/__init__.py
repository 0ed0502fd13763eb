"""The `flowline` command's subcommands (the console script's app lives here after the merge)."""
