"""The Hugging Face architectures vidprep ships (``hf_configs.SHIPPED``) against independent truth, offline.

There is no model hub here, so the real checkpoints cannot be loaded. Instead every shipped config is built the way
vidprep builds it (on the meta device: no memory, no init cost) and compared with

- the parameter count published for the checkpoint (DINOv2's model-zoo table, open_clip's ``docs/model_profile.csv``,
  the VideoMAE paper) and, for VideoMAE, a count derived by hand from the paper's architecture;
- the same architecture in another library built with random weights (timm's DINOv2 and SigLIP ViTs, open_clip's
  CLIP and SigLIP towers): total parameters, per-block shape multisets and the shapes outside the blocks. Names and
  the fusion of the attention's q/k/v projections differ between libraries, so shapes are compared with their
  size-1 axes dropped and their axes sorted (open_clip stores its projection transposed), and the attention input
  projections by their parameter count per block;
- patch size, width, depth, heads and input size as each library exposes them, and the preprocessing (resize rule,
  crop, interpolation, mean/std) against the other library's pretrained config or the model's reference transform.

Weight-level equality needs the real checkpoints and is not tested here (README, "Verified architectures").
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
open_clip = pytest.importorskip("open_clip")

from vidprep.stages.models import hf  # noqa: E402
from vidprep.stages.models.hf_configs import SHIPPED  # noqa: E402

#: attention input projections: separate q/k/v (HF), fused qkv (timm), in_proj (torch MHA), MAE-style q/v biases
ATTN_IN = re.compile(r"(q_proj|k_proj|v_proj|\.query\.|\.key\.|\.value\.|\.qkv\.|in_proj|\.q\.|\.kv\.|[qv]_bias)")
BLOCK = re.compile(r"(?:layers?|blocks)\.(\d+)\.")


def signature(module: torch.nn.Module) -> dict:
    """Library-neutral structure: total, per-block shapes and attention-input counts, shapes outside the blocks."""
    blocks: dict[int, list] = defaultdict(list)
    attn_in: dict[int | None, int] = defaultdict(int)
    rest, total = [], 0
    for name, p in module.named_parameters():
        total += p.numel()
        found = BLOCK.search(name)
        index = int(found.group(1)) if found else None
        if ATTN_IN.search(f".{name}"):
            attn_in[index] += p.numel()
            continue
        shape = tuple(sorted(d for d in p.shape if d != 1))
        (blocks[index] if index is not None else rest).append(shape)
    return {"total": total, "blocks": [sorted(blocks[i]) for i in sorted(blocks)], "attn_in": dict(attn_in),
            "rest": sorted(rest)}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def fast_videomae_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """VideoMAE fills its fixed sinusoidal position table with a Python loop (seconds for 1568 positions); the table
    is a buffer, not a parameter, so on the meta device its values do not matter, only its shape."""
    from transformers.models.videomae import modeling_videomae as mv

    monkeypatch.setattr(mv, "get_sinusoid_encoding_table", lambda n, d: torch.zeros(1, n, d))


def tower(ref: str) -> tuple[hf.HFBackend, torch.nn.Module]:
    """vidprep's backend for a shipped id and the transformers tower it builds (random weights, meta device)."""
    backend = hf.make_backend(ref)
    with torch.device("meta"):
        model = getattr(transformers, backend.cls_name)(backend.tower_config)
    return backend, model


def timm_model(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return timm.create_model(name, pretrained=False, num_classes=0)


def open_clip_visual(arch: str) -> torch.nn.Module:
    with torch.device("meta"):
        return open_clip.create_model(arch, pretrained=None, device="meta").visual


# id -> (published parameters, relative tolerance, source). The DINOv2 table rounds to whole millions (ViT-S/14
# "21 M" is 22.06 M built by both transformers and timm, the mask token included); open_clip's profile gives the
# image tower to 10 k parameters.
PUBLISHED = {
    "facebook/dinov2-small": (21e6, 0.06, "facebookresearch/dinov2 README, Pretrained models: ViT-S/14 21 M"),
    "facebook/dinov2-base": (86e6, 0.01, "facebookresearch/dinov2 README, Pretrained models: ViT-B/14 86 M"),
    "facebook/dinov2-large": (300e6, 0.02, "facebookresearch/dinov2 README, Pretrained models: ViT-L/14 300 M"),
    "openai/clip-vit-base-patch32": (87.85e6, 1e-4, "open_clip docs/model_profile.csv: ViT-B-32 image_mparams 87.85"),
    "openai/clip-vit-base-patch16": (86.19e6, 1e-4, "open_clip docs/model_profile.csv: ViT-B-16 image_mparams 86.19"),
    "google/siglip-base-patch16-224": (92.88e6, 1e-4,
                                       "open_clip docs/model_profile.csv: ViT-B-16-SigLIP image_mparams 92.88"),
    # SigLIP 2 fixed-resolution B/16 keeps SigLIP's vision tower (the SigLIP 2 paper; open_clip's ViT-B-16-SigLIP2
    # config names the same timm trunk, vit_base_patch16_siglip_224).
    "google/siglip2-base-patch16-224": (92.88e6, 1e-4, "as SigLIP B/16 (same vision tower)"),
    "MCG-NJU/videomae-base": (87e6, 0.01, "Tong et al. 2022, VideoMAE, Kinetics-400 table: ViT-B 87 M"),
}


def test_every_shipped_model_has_a_published_count() -> None:
    assert set(PUBLISHED) == set(SHIPPED)


@pytest.mark.parametrize("ref", sorted(SHIPPED))
def test_parameter_count_matches_the_published_one(ref: str) -> None:
    published, tolerance, source = PUBLISHED[ref]
    _, model = tower(ref)
    assert n_params(model) == pytest.approx(published, rel=tolerance), source


# ---- DINOv2 against timm -----------------------------------------------------------------------------------------

DINOV2_TIMM = {"facebook/dinov2-small": "vit_small_patch14_dinov2", "facebook/dinov2-base": "vit_base_patch14_dinov2",
               "facebook/dinov2-large": "vit_large_patch14_dinov2"}


@pytest.mark.parametrize("ref", sorted(DINOV2_TIMM))
def test_dinov2_matches_timm(ref: str) -> None:
    backend, model = tower(ref)
    other = timm_model(DINOV2_TIMM[ref])
    cfg = backend.tower_config
    ours, theirs = signature(model), signature(other)
    # transformers keeps DINOv2's mask token (masked-image pretraining; it is in the HF checkpoints), timm drops it
    assert ours["rest"] == sorted([*theirs["rest"], (cfg.hidden_size,)])
    assert ours["total"] == theirs["total"] + cfg.hidden_size
    assert ours["blocks"] == theirs["blocks"] and ours["attn_in"] == theirs["attn_in"]
    assert (cfg.patch_size, cfg.patch_size) == tuple(other.patch_embed.patch_size)
    assert cfg.hidden_size == other.embed_dim and cfg.num_hidden_layers == len(other.blocks)
    assert cfg.num_attention_heads == other.blocks[0].attn.num_heads
    assert other.pretrained_cfg["input_size"] == (3, cfg.image_size, cfg.image_size)  # 518: 37x37 position grid
    # preprocessing: timm's pretrained config for mean/std/interpolation; resize 256 + center crop 224 is DINOv2's
    # own evaluation transform (dinov2/data/transforms.py, make_classification_eval_transform)
    spec = backend.input
    assert spec.mean == pytest.approx(other.pretrained_cfg["mean"]) and spec.std == pytest.approx(
        other.pretrained_cfg["std"])
    assert spec.interpolation == other.pretrained_cfg["interpolation"] == "bicubic"
    assert (spec.resize, spec.crop) == ((256,), (224, 224))


# ---- CLIP towers against open_clip (the OpenAI architectures) ---------------------------------------------------

CLIP_OPEN_CLIP = {"openai/clip-vit-base-patch32": "ViT-B-32", "openai/clip-vit-base-patch16": "ViT-B-16"}


@pytest.mark.parametrize("ref", sorted(CLIP_OPEN_CLIP))
def test_clip_tower_matches_open_clip(ref: str) -> None:
    arch = CLIP_OPEN_CLIP[ref]
    backend, model = tower(ref)
    visual = open_clip_visual(arch)
    cfg = backend.tower_config
    assert signature(model) == signature(visual)  # projection included (HF visual_projection, open_clip proj)
    assert (cfg.image_size, cfg.image_size) == tuple(visual.image_size)
    assert (cfg.patch_size, cfg.patch_size) == tuple(visual.patch_size)
    blocks = visual.transformer.resblocks
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (visual.transformer.width, len(blocks))
    assert cfg.num_attention_heads == blocks[0].attn.num_heads
    assert cfg.projection_dim == backend.dim == visual.output_dim
    assert cfg.intermediate_size == blocks[0].mlp.c_fc.out_features
    pre = open_clip.get_pretrained_cfg(arch, "openai")
    assert pre["quick_gelu"] and cfg.hidden_act == "quick_gelu"  # OpenAI's weights were trained with QuickGELU
    spec = backend.input
    assert spec.mean == pytest.approx(pre["mean"]) and spec.std == pytest.approx(pre["std"])
    assert spec.interpolation == pre["interpolation"] == "bicubic"
    assert pre["resize_mode"] == "shortest" and (spec.resize, spec.crop) == ((cfg.image_size,), (224, 224))
    # timm's port of the same tower has no projection (its head is dropped with num_classes=0)
    other = timm_model(f"vit_base_patch{cfg.patch_size}_clip_224")
    assert n_params(other) == n_params(model) - cfg.hidden_size * cfg.projection_dim


# ---- SigLIP / SigLIP 2 towers against timm and open_clip --------------------------------------------------------

SIGLIP_OPEN_CLIP = {"google/siglip-base-patch16-224": "ViT-B-16-SigLIP",
                    "google/siglip2-base-patch16-224": "ViT-B-16-SigLIP2"}


@pytest.mark.parametrize("ref", sorted(SIGLIP_OPEN_CLIP))
def test_siglip_tower_matches_timm_and_open_clip(ref: str) -> None:
    arch = SIGLIP_OPEN_CLIP[ref]
    backend, model = tower(ref)
    cfg = backend.tower_config
    other = timm_model("vit_base_patch16_siglip_224")
    assert signature(model) == signature(other)  # the attention-pooling (MAP) head included
    assert n_params(open_clip_visual(arch)) == n_params(model)
    assert open_clip.get_model_config(arch)["vision_cfg"]["timm_model_name"] == "vit_base_patch16_siglip_224"
    assert (cfg.patch_size, cfg.patch_size) == tuple(other.patch_embed.patch_size)
    assert (cfg.hidden_size, cfg.num_hidden_layers) == (other.embed_dim, len(other.blocks))
    assert cfg.num_attention_heads == other.blocks[0].attn.num_heads
    assert other.pretrained_cfg["input_size"] == (3, cfg.image_size, cfg.image_size)
    pre = open_clip.get_pretrained_cfg(arch, "webli")
    spec = backend.input
    assert spec.mean == pytest.approx(pre["mean"]) and spec.std == pytest.approx(pre["std"])
    assert pre["resize_mode"] == "squash" and spec.resize == spec.crop == (224, 224)  # no crop, aspect not kept
    if ref.startswith("google/siglip2"):
        # HF's preprocessor_config.json for the fixed-resolution SigLIP 2 checkpoints says resample 2 (bilinear);
        # open_clip/timm resize their own SigLIP 2 weights bicubic. vidprep's hf: backend follows the HF file.
        assert spec.interpolation == "bilinear" and pre["interpolation"] == "bicubic"
    else:
        assert spec.interpolation == pre["interpolation"] == "bicubic"


# ---- VideoMAE: no other library has it; the paper's architecture by hand ----------------------------------------


def test_videomae_base_by_arithmetic() -> None:
    """ViT-B (768 wide, 12 blocks, MLP 3072) on 2x16x16 tubelets, fixed sinusoidal positions (a buffer), q and v
    biases only (as MAE/BEiT), final LayerNorm (``use_mean_pooling: false``) - VideoMAE paper, Sec. 3 and its code."""
    backend, model = tower("MCG-NJU/videomae-base")
    cfg = backend.tower_config
    d, mlp = 768, 3072
    embed = d * 3 * 2 * 16 * 16 + d
    block = 2 * d + (3 * d * d + 2 * d) + (d * d + d) + 2 * d + (d * mlp + mlp) + (mlp * d + d)
    assert n_params(model) == embed + 12 * block + 2 * d == 86_227_200
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (d, 12, 12, mlp)
    assert (cfg.tubelet_size, cfg.patch_size, cfg.num_frames, cfg.image_size) == (2, 16, 16, 224)
    tokens = (16 // 2) * (224 // 16) ** 2
    assert tuple(model.embeddings.position_embeddings.shape) == (1, tokens, d) == (1, 1568, 768)
    # the blocks are a ViT-B/16's apart from the attention input (no key bias)
    vit = signature(timm_model("vit_base_patch16_224"))
    ours = signature(model)
    assert ours["blocks"] == vit["blocks"]
    assert all(ours["attn_in"][i] == vit["attn_in"][i] - d for i in range(12))
    # preprocessing: short side 224, center crop 224, bilinear, as transformers' VideoMAEImageProcessor (whose class
    # defaults describe videomae-base); mean/std (ImageNet) could not be checked offline, see README
    spec = backend.input
    proc = transformers.VideoMAEImageProcessor()
    assert spec.resize == (proc.size["shortest_edge"],) and spec.crop == (proc.crop_size["height"],
                                                                         proc.crop_size["width"])
    assert spec.interpolation == "bilinear" and int(proc.resample) == 2
    assert spec.clip_len == cfg.num_frames == 16 and backend.default_split["clip_frames"] == 16


def _walk(entry: dict) -> Iterator[float]:
    for value in entry.values():
        if isinstance(value, dict):
            yield from _walk(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield value


def test_shipped_configs_are_plain_finite_json() -> None:
    """What ships is data (no code, no remote mapping), all numbers finite."""
    for ref, entry in SHIPPED.items():
        assert set(entry) <= {"config", "preprocessor", "fps"}, ref
        assert "auto_map" not in entry["config"], ref
        assert np.isfinite(list(_walk(entry))).all(), ref
