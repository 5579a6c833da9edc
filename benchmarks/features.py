"""`vidprep features` throughput against the limits measured in the same run, a naive baseline, and peak RSS.

Usage::

    python benchmarks/features.py [--quick] [--device cpu]

Inputs (deterministic; decoding them is deliberately expensive): testsrc2 + temporal noise, H.264 veryfast —
a720.mp4 (1280x720 30 fps 60 s), b480.mp4 (854x480 25 fps 10 s), c1080.mp4 (1920x1080 30 fps 20 s).

Rows:
- model-only: frames (or clips) per second on pre-decoded uint8 arrays, same batch size and settings as vidprep;
- decode-only: seconds for vidprep's decode of the same sampling into numpy;
- end-to-end ÷ limit, where limit = 1 / (decode time + model time per item): resnet18 at --fps 1 on a720
  (decode-bound) and r2plus1d_18 on 16-frame clips (112 px crops) of b480 (model-bound). End-to-end is measured
  in-process with the library (`vidprep.engine.driver.run`; the second of two runs, so the worker's model is built and
  its kernels primed, as in any long run) and as the real CLI (cold start included);
- naive baseline: OpenCV decodes every frame of b480, torchvision preprocessing per frame, one frame at a time
  through resnet18 in fp32 (best of two runs); compared with warm `vidprep features --every 1` on the same file;
- one model per family (``--families [--models A,B] [--repeats N]``): resnet18, open_clip:ViT-B-32,
  hf:facebook/dinov2-small, timm:resnet50 and the clip model hf:MCG-NJU/videomae-base, each at its default sampling
  on 480p 25 fps, 40 s: end-to-end items/s (in-process, warm) ÷ a bare batched loop of the same headless module
  on the same pre-decoded frames, already preprocessed to the model's size (the irreducible model cost; same
  threads, precision and streams: two batches side by side on a CPU), also ÷ the same loop run as one stream of
  whole batches on all threads (``ratio_one_stream``: the model alone as the issue measured it) and ÷ the
  decode+model limit, median of N repeats, and the CLI's peak RSS; with ``--dense`` the image models run on every
  frame of a 10 s input (``--every 1``), so each item costs one decoded frame rather than the 25 of the default
  1 frame/s (the model, not decoding, is then what the ratio weighs);
- peak RSS of the CLI: r2plus1d_18 on c1080, and resnet18 on a 30 s vs a 120 s input (a 10 s input at 2 fps
  never fills one 32-frame batch, so its peak is lower for that reason alone).
Writes benchmarks/results/features.json. Weights are random (`none`): the cost is the same as pretrained.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from common import VIDPREP, make_video, report, run_measured  # noqa: E402
from vidprep import host_heap  # noqa: E402

host_heap.keep_freed_blocks()  # as the CLI does: in-process references and runs share vidprep's heap settings


def decode_seconds(path: Path, split_args: dict) -> tuple[float, np.ndarray]:
    """Time vidprep's decode of ``path`` with the given split options; return (seconds, frames)."""
    from vidprep.config import SplitConfig
    from vidprep.media.decode import decode
    from vidprep.media.probe import probe

    cfg = SplitConfig(**split_args)
    started = time.perf_counter()
    frames = [f.rgb for f in decode(probe(path), cfg.sampling(), cfg.size_spec())]
    return time.perf_counter() - started, np.stack(frames)


def model_rate(model: str, items: np.ndarray, device: str) -> tuple[float, int]:
    """Items per second of the extractor alone (2D: frames; 3D: clips; its batches on its streams), after one
    warm-up batch per stream."""
    from vidprep.config import FeaturesConfig
    from vidprep.stages.features import FeatureExtractor

    ex = FeatureExtractor(FeaturesConfig(model=model, weights="none", device=device))
    run = ex.extract_frames if ex.spec.kind == "2d" else ex.extract_clips
    run(items[: ex.batch_size * ex.streams.streams])
    started = time.perf_counter()
    run(items)
    return len(items) / (time.perf_counter() - started), ex.batch_size


def inprocess_seconds(path: Path, model: str, split_args: list[str], device: str) -> float:
    """Wall seconds of the whole features pipeline in this process (imports already warm)."""
    from vidprep.cli.stage_cmds import build_config
    from vidprep.inputs import expand
    from vidprep.engine.driver import RunOptions, run

    opts = {"model": model, "weights": "none", "device": device, **_flags(split_args)}
    cfg = build_config("features", opts)
    times = []
    for _ in range(2):  # the first run builds the worker's model and primes oneDNN kernels; report the warm one
        out = Path(tempfile.mkdtemp(prefix="vidprep-feat-"))
        try:
            started = time.perf_counter()
            run(expand([str(path)]), cfg, out / "o", RunOptions(executor="serial"))
            times.append(time.perf_counter() - started)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return times[-1]


def _flags(args: list[str]) -> dict:
    """['--fps', '1', '--size', '256'] -> {'fps': 1.0, 'size': 256}."""
    out = {}
    for key, value in zip(args[::2], args[1::2]):
        out[key.lstrip("-").replace("-", "_")] = float(value) if "." in value else int(value)
    return out


def cli_run(path: Path, model: str, args: list[str], device: str) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="vidprep-feat-"))
    try:
        return run_measured([*VIDPREP, "features", str(path), "-o", str(out / "o"), "--model", model,
                             "--weights", "none", "--device", device, "--executor", "serial", "-q", *args])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def clips_of(frames: np.ndarray, length: int) -> np.ndarray:
    n = len(frames) // length
    return frames[: n * length].reshape(n, length, *frames.shape[1:])


def limit_case(name: str, path: Path, model: str, args: list[str], device: str, clip_len: int | None) -> dict:
    """decode-only + model-only limit vs end-to-end for one (input, model) pair."""
    dec_s, frames = decode_seconds(path, _flags(args))
    items = clips_of(frames, clip_len) if clip_len else frames
    rate, batch = model_rate(model, items, device)
    per_item = dec_s / len(items) + 1.0 / rate
    warm = inprocess_seconds(path, model, args, device)
    cold, rss = cli_run(path, model, args, device)
    return {"case": name, "items": len(items), "batch": batch, "decode_s": dec_s, "model_items_per_s": rate,
            "limit_items_per_s": 1.0 / per_item, "e2e_items_per_s": len(items) / warm,
            "ratio": (len(items) / warm) * per_item, "cli_s": cold, "cli_ratio": (len(items) / cold) * per_item,
            "peak_rss_mib": rss / 2**20}


def naive_seconds(path: Path) -> tuple[float, int]:
    """OpenCV decode of every frame + per-frame torchvision preprocessing + batch-1 fp32 resnet18."""
    import cv2
    import torch
    import torchvision

    model = torchvision.models.resnet18(weights=None).eval()
    model.fc = torch.nn.Identity()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    started, count = time.perf_counter(), 0
    cap = cv2.VideoCapture(str(path))
    with torch.inference_mode():
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            x = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)[None].float() / 255
            x = torchvision.transforms.functional.center_crop(
                torchvision.transforms.functional.resize(x, [256], antialias=True), [224, 224])
            model((x - mean) / std)
            count += 1
    return time.perf_counter() - started, count


def naive_case(path: Path, device: str) -> dict:
    naive_s, count = min(naive_seconds(path) for _ in range(2))  # warm, like the vidprep run it is compared with
    warm = inprocess_seconds(path, "resnet18", ["--every", "1"], device)
    return {"case": "naive vs vidprep: resnet18 every frame b480", "items": count, "naive_s": naive_s,
            "e2e_items_per_s": count / warm, "ratio": naive_s / warm}


FAMILY_MODELS = ("resnet18", "open_clip:ViT-B-32", "hf:facebook/dinov2-small", "timm:resnet50",
                 "hf:MCG-NJU/videomae-base")


def bare_rate(model: str, items: np.ndarray, device: str, one_stream: bool = False) -> tuple[float, int]:
    """Items/s of the backend's headless module alone, on inputs preprocessed beforehand, same batch size, run on
    the extractor's streams as vidprep runs it (two side by side on a CPU); with ``one_stream``, one batch at a
    time on all threads, with the whole batch of the runtime's table (the model alone as the issues measured it)."""
    import torch

    from vidprep.config import FeaturesConfig
    from vidprep.stages.features import FeatureExtractor
    from vidprep.stages.model_streams import ModelStreams
    from vidprep.stages.runtime import default_batch_size

    ex = FeatureExtractor(FeaturesConfig(model=model, weights="none", device=device))
    if one_stream:
        threads = ex.runtime.threads
        ex.streams = ModelStreams(1, lambda: threads)
        ex.batch_size = default_batch_size(ex.spec.kind, ex.runtime.device, 1)
    to_tensor = ex._frames_tensor if ex.spec.kind == "2d" else ex._clips_tensor
    batches = [to_tensor(items[a : a + ex.batch_size]) for a in range(0, len(items), ex.batch_size)]

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), ex.runtime.autocast():
            return ex.model(x).float().cpu()

    list(ex.streams.map(lambda x=x: forward(x) for x in batches[: ex.streams.streams]))  # warm every stream
    started = time.perf_counter()
    list(ex.streams.map(lambda x=x: forward(x) for x in batches))
    return len(items) / (time.perf_counter() - started), ex.batch_size


def family_case(model: str, device: str, repeats: int, quick: bool, dense: bool = False) -> dict:
    """End-to-end (vidprep at the model's default sampling) ÷ the bare model loop on the same frames.

    Every model at its default sampling gets a 40 s input: 2D models (1 frame/s) fill more than one whole batch of
    32 frames, the clip model (16 frames at 7.5 fps) makes 18 clips in 9 batches of 2, so the decode overlaps the
    model as in any long run (a 10 s input gave it 4 clips in 2 batches: only the first batch could overlap, and
    the row weighed the start-up more than the steady state). With ``dense`` the image models read every frame of
    a 10 s input (the clip model is unchanged). Each repeat measures decode-only, the bare loop
    and end-to-end back to back; the row reports the medians and the 1-minute load average before each repeat.
    ``ratio`` = end-to-end ÷ bare model (the target); ``ratio_limit`` = end-to-end ÷ 1/(decode + model time per
    item), i.e. what vidprep adds beyond the two costs it cannot avoid.
    """
    from vidprep.stages.models import get_backend

    split = dict(get_backend(model).default_split)
    clip_len = split.get("clip_frames")
    if dense and not clip_len:  # every frame: one decoded frame per item instead of 25 at the default 1 fps
        split = {"every": 1, **{k: v for k, v in split.items() if k not in ("fps", "every", "num_frames")}}
    seconds = (3 if quick else 10) if dense and not clip_len else (8 if quick else 40)
    path = make_video(f"b480_{seconds}s.mp4", 854, 480, 25, seconds)
    args = [x for k, v in split.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    bare, single, e2e, ratios, limits, decodes, loads = [], [], [], [], [], [], []
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        dec_s, frames = decode_seconds(path, dict(split))
        items = clips_of(frames, clip_len) if clip_len else frames
        rate, batch = bare_rate(model, items, device)
        single.append(bare_rate(model, items, device, one_stream=True)[0])
        warm = inprocess_seconds(path, model, args, device)
        decodes.append(dec_s)
        bare.append(rate)
        e2e.append(len(items) / warm)
        ratios.append(e2e[-1] / rate)
        limits.append(e2e[-1] * (dec_s / len(items) + 1.0 / rate))
    _, rss = cli_run(path, model, args, device)
    row = {"case": f"{model} ({' '.join(args)}, {seconds} s)", "items": len(items), "batch": batch,
           "decode_s": float(np.median(decodes)), "model_items_per_s": float(np.median(bare)),
           "e2e_items_per_s": float(np.median(e2e)), "ratio": float(np.median(ratios)),
           "one_stream_items_per_s": float(np.median(single)),
           "ratio_one_stream": float(np.median([e / s for e, s in zip(e2e, single)])),
           "ratios": " ".join(f"{r:.2f}" for r in ratios), "ratio_limit": float(np.median(limits)),
           "load_1m": " ".join(f"{x:.1f}" for x in loads), "peak_rss_mib": rss / 2**20}
    print(row, flush=True)  # long rows: show each as it is measured
    return row


def rss_rows(device: str, quick: bool) -> list[dict]:
    rows = []
    c1080 = make_video("c1080_20s.mp4" if not quick else "c1080_4s.mp4", 1920, 1080, 30, 4 if quick else 20)
    wall, rss = cli_run(c1080, "r2plus1d_18", [], device)
    rows.append({"case": "rss r2plus1d_18 c1080 (default 15 fps, 16-frame clips)", "cli_s": wall,
                 "peak_rss_mib": rss / 2**20})
    for seconds in (10, 30) if quick else (30, 120):  # both long enough to fill whole batches
        path = make_video(f"feat_rss_{seconds}s.mp4", 854, 480, 25, seconds)
        wall, rss = cli_run(path, "resnet18", ["--fps", "2"], device)
        rows.append({"case": f"rss resnet18 fps2 {seconds}s", "cli_s": wall, "peak_rss_mib": rss / 2**20})
    rows.append({"case": "rss long/short", "ratio": rows[-1]["peak_rss_mib"] / rows[-2]["peak_rss_mib"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short inputs (smoke run)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rss-only", action="store_true", help="only the peak-RSS rows")
    parser.add_argument("--families", action="store_true", help="only the rows of one model per family")
    parser.add_argument("--models", help="comma-separated subset of the family models (with --families)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each family row (median reported)")
    parser.add_argument("--dense", action="store_true",
                        help="family rows of image models on every frame of a 10 s input (--every 1) instead of "
                             "their default 1 frame/s, where decoding 25 frames per item dominates")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.families:
        models = args.models.split(",") if args.models else FAMILY_MODELS
        rows = [family_case(m, args.device, args.repeats, args.quick, args.dense) for m in models]
        report("features_families", ["case", "items", "batch", "decode_s", "model_items_per_s", "e2e_items_per_s",
                                     "ratio", "ratios", "one_stream_items_per_s", "ratio_one_stream", "ratio_limit",
                                     "load_1m", "peak_rss_mib"], rows,
               {"device": args.device, "targets": "ratio >= 0.85"})
        return
    a720 = make_video("a720_10s.mp4" if args.quick else "a720_60s.mp4", 1280, 720, 30, 10 if args.quick else 60)
    b480 = make_video("b480_4s.mp4" if args.quick else "b480_10s.mp4", 854, 480, 25, 4 if args.quick else 10)
    rows = [] if args.rss_only else [
        limit_case("resnet18 fps1 a720 (decode-bound)", a720, "resnet18", ["--fps", "1"], args.device, None),
        limit_case("r2plus1d_18 clip16 b480 (model-bound)", b480, "r2plus1d_18", ["--clip-frames", "16", "--size",
                   "128"], args.device, 16),
        naive_case(b480, args.device),
    ]
    rows += rss_rows(args.device, args.quick)
    columns = ["case", "items", "batch", "decode_s", "model_items_per_s", "limit_items_per_s", "e2e_items_per_s",
               "ratio", "naive_s", "cli_s", "cli_ratio", "peak_rss_mib"]
    report("features_rss" if args.rss_only else "features", columns, rows,
           {"device": args.device, "targets": "ratio >= 0.85 (limit cases); naive ratio >= 3; "
                                              "c1080 rss < 2048 MiB; rss long/short <= 1.10"})


if __name__ == "__main__":
    main()
