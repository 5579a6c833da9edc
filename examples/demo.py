"""`make demo`: make a small labelled sample set with ffmpeg, run the main pipeline on it, train on the result.

Everything it runs is the public CLI, so the printed commands can be copied. Weights are random (`--weights none`)
because these machines cannot download pretrained ones; with network or a local checkpoint use `--weights DEFAULT`
or `--weights PATH`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

CLASSES = {
    "patterns": ["testsrc2", "smptebars", "testsrc"],
    "fractals": ["mandelbrot=maxiter=200", "mandelbrot=maxiter=80:start_scale=2", "mandelbrot=maxiter=120:end_scale=0.1"],
}
VIDPREP = [sys.executable, "-m", "vidprep"]


def sh(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    """Print and run a command; stop the demo if it fails."""
    print("$ " + " ".join(shlex.quote(a) for a in argv), flush=True)
    proc = subprocess.run(argv, text=True, **kwargs)
    if proc.returncode not in (0,):
        sys.exit(f"demo step failed with exit code {proc.returncode}")
    return proc


def make_samples(root: Path) -> Path:
    """Two visibly different classes of 2-second 320x240 videos (noise added so codecs have work)."""
    videos = root / "videos"
    for cls, sources in CLASSES.items():
        (videos / cls).mkdir(parents=True, exist_ok=True)
        for i, src in enumerate(sources):
            out = videos / cls / f"{cls}_{i}.mp4"
            if not out.exists():
                graph = f"{src}:size=320x240:rate=25" if "=" in src else f"{src}=size=320x240:rate=25"
                subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-t", "2",
                                "-vf", "noise=alls=8:allf=t", "-c:v", "libx264", "-preset", "veryfast",
                                "-pix_fmt", "yuv420p", str(out)], check=True)
    return videos


def main(workdir: str = "demo") -> None:
    root = Path(workdir)
    if root.exists():
        shutil.rmtree(root)
    videos = make_samples(root)
    print(f"made {len(list(videos.rglob('*.mp4')))} sample videos in {videos}/")
    sh([*VIDPREP, "probe", str(videos)])
    sh([*VIDPREP, "split", str(videos), "-o", str(root / "clips"), "--clip-frames", "8", "--stride", "4",
        "--size", "112", "--label-from-dir", "--videos-per-shard", "2"])
    sh([*VIDPREP, "enhance", str(root / "clips"), "-o", str(root / "enhanced"), "--white-balance", "grayworld",
        "--contrast", "clahe", "--preview", str(root / "enhance_preview.png")])
    sh([*VIDPREP, "features", str(root / "enhanced"), "-o", str(root / "features"), "--model", "resnet18",
        "--weights", "none", "--normalize", "zscore"])
    sh([*VIDPREP, "shards", "info", str(root / "features")])
    sh([*VIDPREP, "shards", "verify", str(root / "features")])
    trainer = Path(__file__).with_name("train_feature_classifier.py")
    if trainer.exists():
        sh([sys.executable, str(trainer), str(root / "features"), "--epochs", "30"])
    print(f"\ndemo output in {root}/: clips/ (frame shards), enhanced/ (enhanced frame shards, preview "
          f"enhance_preview.png), features/ (resnet18 features, z-scored; normalization.h5)")


if __name__ == "__main__":
    main(*sys.argv[1:])
