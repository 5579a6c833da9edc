"""Console-script shim: `vidprep = vidprep.cli.main:main`."""

from vidprep.cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
