"""`python -m ops.cli`: the `tradeops` command line."""

from ops.cli.main import main

main()
