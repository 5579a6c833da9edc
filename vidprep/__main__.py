"""`python -m vidprep` runs the CLI."""

import sys

from vidprep import host_heap
from vidprep.media import prefetch

host_heap.keep_freed_blocks()  # before any thread starts, so every thread shares the one heap
prefetch.start_for(sys.argv[1:])  # ffmpeg's self-queries overlap the imports below

from vidprep.cli import fast_exit  # noqa: E402
from vidprep.cli.app import main  # noqa: E402

fast_exit.run(main)
