"""Console-script shim: `vidprep = vidprep.cli.main:main` (the process entry point; see `fast_exit`)."""

import sys
from typing import NoReturn

from vidprep import host_heap
from vidprep.media import prefetch

host_heap.keep_freed_blocks()  # before any thread starts, so every thread shares the one heap
prefetch.start_for(sys.argv[1:])  # ffmpeg's self-queries overlap the imports below

from vidprep.cli import app, fast_exit  # noqa: E402


def main() -> NoReturn:
    """Run the CLI on ``sys.argv`` and end the process without interpreter teardown."""
    fast_exit.run(app.main)


if __name__ == "__main__":
    main()
