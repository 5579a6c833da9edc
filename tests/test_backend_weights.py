"""Weights of the new families, below the CLI: shipped architectures with a local file, cache misses, identity.

Each check compares against an independent construction of the same model with the library alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
pytest.importorskip("open_clip")

from vidprep.errors import WeightsError  # noqa: E402
from vidprep.stages.models import get_backend, weights  # noqa: E402
from vidprep.stages.models.hf_configs import SHIPPED  # noqa: E402


@pytest.fixture()
def empty_offline_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """No file is in the HF cache, and downloading is forbidden."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")


def test_shipped_hf_architecture_loads_a_plain_safetensors_file(tmp_path: Path) -> None:
    """hf:facebook/dinov2-small with a weights file: the shipped config, no hub; equal to transformers' own model."""
    from safetensors.torch import save_file

    cfg = transformers.AutoConfig.for_model(**SHIPPED["facebook/dinov2-small"]["config"])
    torch.manual_seed(11)
    ref = transformers.Dinov2Model(cfg).eval()
    path = tmp_path / "dinov2-small.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    backend = get_backend("hf:facebook/dinov2-small")
    choice = backend.resolve_weights(str(path))
    proof = backend.verify(choice)
    model, info = backend.build(choice, proof=proof)
    assert info["sha256"] == weights.sha256_of(path) == proof.sha256 and info["source"] == "file"
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), ref(pixel_values=x).pooler_output)
    assert backend.feature_spec(choice).dim == 384


@pytest.mark.parametrize("model,repo,filename", [
    ("timm:test_vit", "timm/test_vit.r160_in1k", "model.safetensors"),
    ("open_clip:ViT-B-32", "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"),
    ("hf:MCG-NJU/videomae-base", "MCG-NJU/videomae-base", "model.safetensors"),
])
def test_missing_cache_entry_names_what_to_put_where(empty_offline_cache: None, model: str, repo: str,
                                                     filename: str) -> None:
    backend = get_backend(model)
    choice = backend.resolve_weights("DEFAULT")
    with pytest.raises(WeightsError) as err:
        backend.verify(choice)
    message = str(err.value)
    assert repo in message and filename in message and "huggingface-cli download" in message
    assert "VIDPREP_OFFLINE" in message


def test_hub_file_identity_is_repo_revision_and_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached file (HF cache layout .../snapshots/<commit>/file) is loaded with its revision and sha256 recorded."""
    import huggingface_hub

    torch.manual_seed(2)
    full = timm.create_model("test_resnet", pretrained=False).eval()
    snap = tmp_path / "models--timm--test_resnet.r160_in1k" / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    torch.save(full.state_dict(), snap / "pytorch_model.bin")
    found = {"pytorch_model.bin": str(snap / "pytorch_model.bin")}
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name, **k: found.get(name))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    backend = get_backend("timm:test_resnet")
    model, info = backend.build(backend.resolve_weights("DEFAULT"))
    assert info["revision"] == "0123abc" and info["sha256"] == weights.sha256_of(snap / "pytorch_model.bin")
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), full.forward_head(full.forward_features(x), pre_logits=True))


def test_wrong_weights_file_is_one_clear_error(tmp_path: Path) -> None:
    torch.save({"not.a.key": torch.zeros(3)}, tmp_path / "other.pt")
    for name in ("timm:test_vit", "hf:facebook/dinov2-small"):
        backend = get_backend(name)
        with pytest.raises(WeightsError, match="does not match"):
            backend.build(backend.resolve_weights(str(tmp_path / "other.pt")))
    with pytest.raises(WeightsError, match="no such weights file"):
        get_backend("timm:test_vit").resolve_weights(str(tmp_path / "missing.pt"))
