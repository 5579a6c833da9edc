"""Frames stored as JPEG in a `vidprep-shard` (``frame_codec="jpeg"``): encoding, and decoding that trusts nothing.

A stored frame is untrusted input: its header is read (`jpeg_size`) and checked against the format's frame-size
limit and the video's first frame before OpenCV decodes it. cv2 is imported by the functions that need it only, so
reading raw shards never needs it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vidprep.shards.format import MAX_FRAME_PIXELS


def encode_jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """One RGB frame -> JPEG bytes as a uint8 array (cv2 imported here only, so reading raw shards never needs it)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("cv2.imencode failed to encode a frame as JPEG")
    return buf.reshape(-1)


#: Where a stored JPEG's frame header must be: vidprep writes it within the first few hundred bytes; room is left
#: for a few APPn segments (EXIF, ICC) of frames written by other tools.
MAX_JPEG_HEADER_BYTES = 256 * 1024


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header (SOFn), read without decoding; None when there is none before
    the first scan. A stored frame is untrusted: a 600-byte JPEG can claim 20000x20000 pixels, which the decoder
    would allocate (2.3 GB, 8 s here) before finding the data missing."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if marker == 0xDA or length < 2:  # start of scan before any frame header, or a broken length
            return None
        i += 2 + length
    return None


def decode_jpeg(data: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """JPEG bytes (uint8 array) -> (H,W,3) uint8 RGB; ValueError for a frame header that is missing, claims more
    than MAX_FRAME_PIXELS, or differs from ``size`` (width, height) when that is given: checked before decoding."""
    import cv2

    blob = np.asarray(data, dtype=np.uint8)
    claimed = jpeg_size(bytes(blob[:MAX_JPEG_HEADER_BYTES]))
    if claimed is None:
        raise ValueError("a stored JPEG frame has no readable frame header")
    w, h = claimed
    if not 0 < w * h <= MAX_FRAME_PIXELS:
        raise ValueError(f"a stored JPEG frame claims {w}x{h} pixels (at most {MAX_FRAME_PIXELS})")
    if size is not None and claimed != size:
        raise ValueError(f"stored JPEG frames of one video differ in size ({size[0]}x{size[1]}, then {w}x{h})")
    bgr = cv2.imdecode(blob, cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (h, w):
        raise ValueError("cv2.imdecode could not decode a stored JPEG frame")
    return bgr[..., ::-1].copy()


def decode_jpegs(blobs: Iterable[np.ndarray]) -> np.ndarray:
    """Several stored JPEG frames of one video -> (n,H,W,3) uint8 RGB ((0,0,0,3) when there are none); every
    frame must have the first one's size (checked from its header before it is decoded)."""
    frames: list[np.ndarray] = []
    for blob in blobs:
        frames.append(decode_jpeg(blob, (frames[0].shape[1], frames[0].shape[0]) if frames else None))
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
