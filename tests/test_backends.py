"""Every model family end to end through the real CLI, with tiny random models a user could also bring.

``--model hf:DIR`` / ``open_clip:DIR`` read model directories saved by the libraries themselves (tests/tiny_models.py);
``timm:test_vit`` is in timm's registry. Checked with plain h5py: feature shapes and dims (from the model configs),
the weights' identity in /meta/config_json, determinism with --seed, normalization, resume, zero-shot scores
against an independent open_clip computation, and the exit-2 refusals (missing extra, missing cache entry, pickles
that run code, text labels on a model without a text tower).
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")
timm = pytest.importorskip("timm")

import tiny_models as tm  # noqa: E402
from clihelp import cli, shard_paths, vidprep  # noqa: E402

SERIAL = ["--executor", "serial"]


@pytest.fixture(scope="module")
def videos(make_video) -> list[Path]:  # type: ignore[no-untyped-def]
    return [make_video("bk_a.mp4", seconds=1.0), make_video("bk_b.mp4", source="smptebars=size=80x60:rate=25",
                                                            seconds=1.2)]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-cli-models")


def features(out: Path) -> np.ndarray:
    return np.concatenate([h5py.File(p, "r")["clips/features"][:] for p in shard_paths(out)])


def config_json(out: Path) -> dict:
    with h5py.File(shard_paths(out)[0], "r") as f:
        return json.loads(f["meta/config_json"][()])


def run(*args: object) -> object:
    result = cli("features", *map(str, args), *SERIAL)
    return result


# model -> (how to name it, --weights, split options, expected dim)
CASES = {
    "hf-dinov2": ("dinov2", "DEFAULT", ["--fps", "4", "--size", "40"], 32),
    "hf-clip": ("clip", "DEFAULT", ["--fps", "4", "--size", "40"], 16),
    "hf-siglip": ("siglip", "DEFAULT", ["--fps", "4", "--size", "40"], 32),
    "hf-videomae": ("videomae", "DEFAULT", ["--fps", "8", "--clip-frames", "4", "--size", "40"], 32),
    "open_clip": ("open_clip", "DEFAULT", ["--fps", "4", "--size", "40"], 16),
    "timm": ("timm", "none", ["--fps", "4", "--size", "40"], 64),
}


def model_name(models_dir: Path, kind: str) -> str:
    if kind == "open_clip":
        return f"open_clip:{tm.open_clip_dir(models_dir)}"
    if kind == "timm":
        return "timm:test_vit"
    return f"hf:{tm.hf_dir(models_dir, kind)}"


@pytest.mark.parametrize("case", list(CASES))
def test_family_end_to_end_shapes_identity_determinism_resume(videos: list[Path], models_dir: Path, tmp_path: Path,
                                                               case: str) -> None:
    kind, weights, split, dim = CASES[case]
    model = model_name(models_dir, kind)
    out = tmp_path / "out"
    first = run(*videos, "-o", out, "--model", model, "--weights", weights, *split, "--seed", "3")
    assert first.exit_code == 0, first.output
    feats = features(out)
    with h5py.File(shard_paths(out)[0], "r") as f:
        n_clips = f["clips/video_index"].shape[0]
    assert feats.shape == (n_clips, dim) and feats.dtype == np.float32 and np.isfinite(feats).all()
    described = config_json(out)["features_model"]
    assert described["model"] == model and described["dim"] == dim
    from vidprep.executors import threads

    share = threads.current()  # two streams of a CPU model whenever the run may use two or more threads
    assert described["streams"] == min(2, share.fixed or share.cpus)
    if weights == "DEFAULT":  # a file from the model dir: known by its content
        weights_file = Path(described["weights"])
        assert weights_file.parent == Path(model.partition(":")[2]).resolve()
        import hashlib

        assert described["sha256"] == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    else:
        assert described["source"] == "none" and described["seed"] == 3
    again = run(*videos, "-o", tmp_path / "again", "--model", model, "--weights", weights, *split, "--seed", "3")
    assert again.exit_code == 0 and np.array_equal(features(tmp_path / "again"), feats)
    before = [p.stat().st_mtime_ns for p in shard_paths(out)]
    resumed = run(*videos, "-o", out, "--model", model, "--weights", weights, *split, "--seed", "3")
    assert resumed.exit_code == 0 and [p.stat().st_mtime_ns for p in shard_paths(out)] == before
    if kind == "open_clip":  # image-text: l2 by default
        assert config_json(out)["features"]["normalize"] == "l2"
        np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    if kind == "videomae":
        assert config_json(out)["split"]["clip_frames"] == 4


def test_seed_changes_random_weights_and_normalization_applies(videos: list[Path], tmp_path: Path) -> None:
    common = ["--model", "timm:test_vit", "--weights", "none", "--fps", "4", "--size", "40"]
    a = run(videos[0], "-o", tmp_path / "a", *common, "--seed", "1", "--normalize", "zscore")
    b = run(videos[0], "-o", tmp_path / "b", *common, "--seed", "2", "--normalize", "zscore")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    fa, fb = features(tmp_path / "a"), features(tmp_path / "b")
    assert not np.allclose(fa, fb)
    np.testing.assert_allclose(fa.mean(0), 0.0, atol=1e-4)  # zscore fitted on this run's features
    stats = run(videos[1], "-o", tmp_path / "c", *common, "--seed", "1", "--stats-from",
                tmp_path / "a" / "normalization.h5")
    assert stats.exit_code == 0, stats.output
    other = run(videos[1], "-o", tmp_path / "d", *common, "--seed", "2", "--stats-from",
                tmp_path / "a" / "normalization.h5")
    assert other.exit_code == 2 and "--stats-from" in other.output  # fitted on other (seeded) weights


def test_zero_shot_scores_match_open_clip(videos: list[Path], models_dir: Path, tmp_path: Path) -> None:
    d = tm.open_clip_dir(models_dir)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\n\ncolor bars\ntest pattern\n")
    out = tmp_path / "zs"
    result = run(*videos, "-o", out, "--model", f"open_clip:{d}", "--fps", "4", "--size", "40", "--pool", "mean",
                 "--text-labels", labels, "--text-template", "a photo of {}")
    assert result.exit_code == 0, result.output
    prompts = ["a photo of cat", "a photo of color bars", "a photo of test pattern"]
    model = tm.open_clip_model(d)
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(d / "open_clip_model.safetensors")))
    with torch.inference_mode():
        text = model.encode_text(open_clip.get_tokenizer(f"local-dir:{d}")(prompts)).numpy()
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    rows = []
    for path in shard_paths(out):
        with h5py.File(path, "r") as f:
            meta = json.loads(f["meta/text_labels_json"][()])
            assert meta["labels"] == ["cat", "color bars", "test pattern"] and meta["prompts"] == prompts
            np.testing.assert_allclose(f["meta/text_embeddings"][:], text, atol=1e-5)
            scores, feats = f["clips/text_scores"][:], f["clips/features"][:]
            assert scores.shape == (len(feats), 3) and scores.dtype == np.float32
            np.testing.assert_allclose(scores, feats @ text.T, atol=1e-5)  # features are l2-normalized
            rows += [sorted(zip(s, meta["labels"]), reverse=True)[:2] for s in scores]
    listed = cli("shards", "ls", str(out), "--top-labels", "2", "--jsonl")
    assert listed.exit_code == 0, listed.output
    got = [json.loads(line)["top_labels"] for line in listed.stdout.splitlines()]
    assert [[name for name, _ in r] for r in got] == [[name for _, name in r] for r in rows]


def test_text_labels_refused_for_models_without_text_tower(videos: list[Path], tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\n")
    result = run(videos[0], "-o", tmp_path / "o", "--model", "timm:test_vit", "--weights", "none",
                 "--text-labels", labels)
    assert result.exit_code == 2 and "--text-labels" in result.output and "image-text" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    bad = run(videos[0], "-o", tmp_path / "o2", "--model", "timm:test_vit", "--weights", "none", "--text-labels", empty)
    assert bad.exit_code == 2 and "no labels" in bad.output
    assert not list((tmp_path / "o").glob("shard-*")) if (tmp_path / "o").exists() else True


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 videos: list[Path]) -> None:
    from vidprep.stages import models

    monkeypatch.setattr(models, "installed", lambda family: family == "torchvision")
    models.get_backend.cache_clear()
    try:
        result = run(videos[0], "-o", tmp_path / "o", "--model", "timm:resnet18")
    finally:
        models.get_backend.cache_clear()
    assert result.exit_code == 2 and "pip install 'vidprep[timm]'" in result.output
    listing = cli("features", "--list-models")
    assert listing.exit_code == 0 and "vidprep[clip]" in listing.stdout and "resnet18" in listing.stdout


def test_missing_hf_cache_entry_names_what_to_put_where(videos: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "hf-cache"
    env = {"HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home"), "VIDPREP_OFFLINE": "1"}
    result = vidprep("features", videos[0], "-o", tmp_path / "o", "--model", "hf:facebook/dinov2-small",
                     *SERIAL, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    line = [ln for ln in result.stderr.splitlines() if "error" in ln.lower()]
    assert len(line) == 1 and "model.safetensors" in line[0] and "facebook/dinov2-small" in line[0]
    assert str(cache) in line[0] and "Traceback" not in result.stderr
    none = run(videos[0], "-o", tmp_path / "o2", "--model", "hf:facebook/dinov2-small", "--weights", "none",
               "--fps", "1", "--size", "32")
    assert none.exit_code == 0, none.output  # the shipped architecture needs no hub
    assert features(tmp_path / "o2").shape[1] == 384


class _Evil:
    """Unpickling this creates ``marker`` (builtins.open), i.e. runs code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def test_weights_that_run_code_are_refused_unrun(videos: list[Path], models_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "model" / "pytorch_model.bin"  # the name transformers itself would unpickle
    evil.parent.mkdir()
    with zipfile.ZipFile(evil, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"state_dict": _Evil(str(marker))}, protocol=2))
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    for model, weights in ((f"hf:{tm.hf_dir(models_dir, 'dinov2')}", evil.parent),
                           (f"open_clip:{tm.open_clip_dir(models_dir)}", evil), ("timm:test_vit", evil)):
        result = run(videos[0], "-o", tmp_path / "o", "--model", model, "--weights", weights)
        assert result.exit_code == 2 and "refused" in result.output and str(evil) in result.output, result.output
        assert not marker.exists()
    assert not os.path.exists(tmp_path / "o" / "shard-00000.h5")


def test_process_executor_gives_the_serial_features(videos: list[Path], models_dir: Path, tmp_path: Path) -> None:
    model = f"hf:{tm.hf_dir(models_dir, 'dinov2')}"
    common = ["--model", model, "--fps", "4", "--size", "40", "--videos-per-shard", "1"]
    serial = cli("features", *map(str, videos), "-o", str(tmp_path / "s"), *common, "--executor", "serial")
    pooled = cli("features", *map(str, videos), "-o", str(tmp_path / "p"), *common, "--executor", "process",
                 "--workers", "2")
    assert serial.exit_code == 0 and pooled.exit_code == 0, serial.output + pooled.output
    np.testing.assert_allclose(features(tmp_path / "p"), features(tmp_path / "s"), rtol=1e-5, atol=1e-6)
