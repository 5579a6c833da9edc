"""`python -m vidprep` runs the CLI."""

from vidprep.cli.app import main

main()
