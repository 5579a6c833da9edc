"""vidprep: turn raw video collections into training-ready HDF5 shards.

Importing vidprep is cheap: torch, cv2 and albumentations are imported only by the modules that use them.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

__all__ = ["__version__"]
