"""`python -m vidprep` runs the CLI."""

import sys

from vidprep.media import prefetch

prefetch.start_for(sys.argv[1:])  # ffmpeg's self-queries overlap the imports below

from vidprep.cli import fast_exit  # noqa: E402
from vidprep.cli.app import main  # noqa: E402

fast_exit.run(main)
