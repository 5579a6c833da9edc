"""Console-script shim: `vidprep = vidprep.cli.main:main`."""

import sys

from vidprep.media import prefetch

prefetch.start_for(sys.argv[1:])  # ffmpeg's self-queries overlap the imports below

from vidprep.cli.app import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    main()
