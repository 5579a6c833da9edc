"""`python -m vidprep` runs the CLI: the console script's entry point (`vidprep.cli.main`), whose import starts the
launch-time work (heap policy, ffmpeg queries) before the rest of vidprep is imported."""

from vidprep.cli.main import main

main()
