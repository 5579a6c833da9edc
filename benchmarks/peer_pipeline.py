"""A stand-in for the best-known feature extractor's pipelines (video_features), for side-by-side timing.

Usage (one case per process, so its start-up is timed like a real CLI run)::

    python benchmarks/peer_pipeline.py resnet18 VIDEO [--fps 1]
    python benchmarks/peer_pipeline.py r2plus1d_18 VIDEO

What it does, as that tool is described doing it (written here from that description; no code of it is used):
2D models: with a target fps the video is first re-encoded with libx264 at that rate to a temp file, then OpenCV
decodes every frame, each frame is resized (short side 256, antialiased), center-cropped to 224, normalized and
pushed through the model one frame at a time in fp32. R(2+1)D: the whole video is decoded into memory first, every
frame resized to 128x171 and center-cropped to 112, then 16-frame windows with step 16 go through the model one
clip at a time in fp32. The model has random weights, like vidprep's `--weights none` rows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision
from torchvision.transforms import functional as tf

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
KINETICS = ([0.43216, 0.394666, 0.37645], [0.22803, 0.22145, 0.216989])


def reencode(path: Path, fps: float, tmp: Path) -> Path:
    out = tmp / "reencoded.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(path), "-vf", f"fps={fps}",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    while True:
        ok, bgr = cap.read()
        if not ok:
            return
        yield torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)


def resnet18(path: Path, fps: float | None) -> int:
    model = torchvision.models.resnet18(weights=None).eval()
    model.fc = torch.nn.Identity()
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    count = 0
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        source = reencode(path, fps, Path(tmp)) if fps else path
        for rgb in frames(source):
            x = tf.center_crop(tf.resize(rgb[None].float() / 255, [256], antialias=True), [224, 224])
            model((x - mean) / std)
            count += 1
    return count


def r2plus1d_18(path: Path) -> int:
    model = torchvision.models.video.r2plus1d_18(weights=None).eval()
    model.fc = torch.nn.Identity()
    mean, std = (torch.tensor(v).view(3, 1, 1, 1) for v in KINETICS)
    video = [tf.center_crop(tf.resize(rgb.float() / 255, [128, 171], antialias=False), [112, 112])
             for rgb in frames(path)]  # the whole video in memory first
    clips = 0
    with torch.inference_mode():
        for start in range(0, len(video) - 15, 16):
            clip = torch.stack(video[start:start + 16], dim=1)  # (3, 16, 112, 112)
            model(((clip - mean) / std)[None])
            clips += 1
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["resnet18", "r2plus1d_18"])
    parser.add_argument("video", type=Path)
    parser.add_argument("--fps", type=float)
    args = parser.parse_args()
    n = resnet18(args.video, args.fps) if args.model == "resnet18" else r2plus1d_18(args.video)
    print(n, file=sys.stderr)
    assert n > 0 and np.isfinite(n)


if __name__ == "__main__":
    main()
