"""Preprocessing and feature parity of every model family with the library's own preprocessing + forward.

For fixed frames, vidprep's tensors (its uint8 batch preprocessing) and features are compared with what each
library does by itself: transformers' image processors (the default torchvision-backed ones, and the PIL ones),
open_clip's ``image_transform`` and timm's ``create_transform`` (both resize PIL images). Features must agree with
cosine >= 0.999 per row. Where resampling differs (PIL's antialiased bicubic vs torch's on uint8 tensors), pixel
values differ by a few 1/255 steps at edges; the bounds below say how much.

Models are tiny and random (tests/tiny_models.py); weights come from files, so the weights path is covered too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")
timm = pytest.importorskip("timm")

import tiny_models as tm  # noqa: E402

from vidprep.config import FeaturesConfig  # noqa: E402
from vidprep.stages.features import FeatureExtractor, preprocess  # noqa: E402


def scene(n: int = 3, h: int = 60, w: int = 84) -> np.ndarray:
    """Smooth synthetic frames (gradients, a disc, a bar) with non-square, non-multiple sizes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        r = 128 + 100 * np.sin((xx + 7 * i) / 9.0)
        g = 255 * yy / h
        b = np.where((xx - w / 2 - 5 * i) ** 2 + (yy - h / 2) ** 2 < (h / 4) ** 2, 230.0, 40.0)
        b[:, 10 + i:16 + i] = 250
        out.append(np.stack([r, g, b], -1))
    return np.clip(np.round(np.stack(out)), 0, 255).astype(np.uint8)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def extractor(model: str, weights: str = "DEFAULT") -> FeatureExtractor:
    return FeatureExtractor(FeaturesConfig(model=model, weights=weights, device="cpu", precision="fp32"))


def vidprep_tensor(ex: FeatureExtractor, x: np.ndarray) -> torch.Tensor:
    return preprocess(torch.from_numpy(x).permute(0, 3, 1, 2), ex.input)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


def _pil(x: np.ndarray) -> list[Any]:
    from PIL import Image

    return [Image.fromarray(f) for f in x]


@pytest.mark.parametrize("kind,processor", [("dinov2", "BitImageProcessor"), ("clip", "CLIPImageProcessor"),
                                            ("siglip", "SiglipImageProcessor")])
def test_hf_image_towers_match_transformers(models_dir: Path, kind: str, processor: str) -> None:
    d = tm.hf_dir(models_dir, kind, seed=5)
    ex = extractor(f"hf:{d}")
    x = scene()
    ours = vidprep_tensor(ex, x)
    model = tm.hf_model(kind, seed=5)
    for variant, bound in ((processor, 0.02), (processor + "Pil", 0.25)):
        proc = getattr(transformers, variant).from_pretrained(d)
        theirs = proc(images=_pil(x), return_tensors="pt")["pixel_values"]
        assert theirs.shape == ours.shape, variant
        assert float((theirs - ours).abs().mean()) < bound, variant  # mean |diff| in normalized units
        with torch.inference_mode():
            out = model(pixel_values=theirs)
        ref = out.image_embeds if kind == "clip" else out.pooler_output
        assert cosines(ex.extract_frames(x), ref.numpy()).min() >= 0.999, variant


def test_hf_videomae_matches_transformers(models_dir: Path) -> None:
    d = tm.hf_dir(models_dir, "videomae", seed=6)
    ex = extractor(f"hf:{d}")
    clips = np.stack([scene(4), scene(4)[::-1]])  # (2, T=4, H, W, 3)
    model = tm.hf_model("videomae", seed=6)
    for variant in ("VideoMAEImageProcessor", "VideoMAEImageProcessorPil"):
        proc = getattr(transformers, variant).from_pretrained(d)
        pixels = torch.cat([proc(images=list(c), return_tensors="pt")["pixel_values"].reshape(1, 4, 3, 32, 32)
                            for c in clips])
        with torch.inference_mode():
            ref = model(pixel_values=pixels).last_hidden_state.mean(1).numpy()
        assert cosines(ex.extract_clips(clips), ref).min() >= 0.999, variant


def test_open_clip_matches_its_image_transform(models_dir: Path) -> None:
    d = tm.open_clip_dir(models_dir, seed=7)
    ex = extractor(f"open_clip:{d}")
    x = scene()
    pre = tm.OPEN_CLIP_TINY["preprocess_cfg"]
    transform = open_clip.image_transform(32, is_train=False, mean=pre["mean"], std=pre["std"],
                                          interpolation=pre["interpolation"], resize_mode=pre["resize_mode"])
    theirs = torch.stack([transform(img) for img in _pil(x)])
    ours = vidprep_tensor(ex, x)
    assert theirs.shape == ours.shape and float((theirs - ours).abs().mean()) < 0.25
    model = tm.open_clip_model(d, seed=7)
    with torch.inference_mode():
        ref = model.encode_image(theirs).numpy()
    assert cosines(ex.extract_frames(x), ref).min() >= 0.999


def test_open_clip_builtin_squash_preprocessing_follows_its_tag() -> None:
    """SigLIP's tag config says squash + bicubic + 0.5 mean/std: vidprep resizes to an exact square, no crop."""
    from vidprep.stages.models import get_backend

    b = get_backend("open_clip:ViT-B-16-SigLIP")
    spec = b.input_spec(b.resolve_weights("none"))
    assert (spec.resize, spec.crop, spec.interpolation, spec.mean) == ((224, 224), (224, 224), "bicubic", (0.5,) * 3)
    clip = get_backend("open_clip:ViT-B-32")
    assert clip.input_spec(clip.resolve_weights("none")).resize == (224,)


@pytest.mark.parametrize("arch", ["test_vit", "test_resnet"])
def test_timm_matches_its_eval_transform_and_weights_file(tmp_path: Path, arch: str) -> None:
    torch.manual_seed(8)
    full = timm.create_model(arch, pretrained=False).eval()  # with its classifier: vidprep must ignore it
    path = tmp_path / f"{arch}.pth"
    torch.save(full.state_dict(), path)
    ex = extractor(f"timm:{arch}", str(path))
    x = scene(h=150, w=200)
    cfg = timm.data.resolve_data_config({}, model=full)
    transform = timm.data.create_transform(**cfg)
    theirs = torch.stack([transform(img) for img in _pil(x)])
    ours = vidprep_tensor(ex, x)
    assert theirs.shape == ours.shape and float((theirs - ours).abs().mean()) < 0.25
    with torch.inference_mode():
        ref = full.forward_head(full.forward_features(theirs), pre_logits=True).numpy()
    got = ex.extract_frames(x)
    assert got.shape == ref.shape and cosines(got, ref).min() >= 0.999
