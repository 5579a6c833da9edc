"""Feature extraction: registry, weights loading (and its refusals), exactness against plain torchvision, runtime.

Exactness tests use fp32 on the CPU and compare with a reference built here from torchvision alone:
``weights.transforms()`` then the model with its classifier replaced by Identity.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from vidprep.config import FeaturesConfig  # noqa: E402
from vidprep.errors import ConfigError, UsageError, WeightsError  # noqa: E402
from vidprep.executors import threads  # noqa: E402
from vidprep.stages import models, runtime  # noqa: E402
from vidprep.stages.features import MODELS, FeatureExtractor, list_models, pool_frames  # noqa: E402

def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to float32 reordering, relative to the features' scale (random-init nets can output tiny values)."""
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))


def frames(n: int, h: int = 61, w: int = 83, seed: int = 0) -> np.ndarray:
    """Random uint8 RGB frames with odd, non-square sizes (so H/W mix-ups fail)."""
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def reference(name: str, x: np.ndarray, state: dict[str, Any] | None = None, seed: int = 0) -> np.ndarray:
    """Plain torchvision: seeded model (or ``state``) minus its head, fed ``DEFAULT.transforms()`` of ``x``."""
    spec = MODELS[name]
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None)
    if state is not None:
        model.load_state_dict(state)
    models._replace(model, spec.head, torch.nn.Identity())
    transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    t = torch.from_numpy(x)
    t = t.permute(0, 3, 1, 2) if x.ndim == 4 else t.permute(0, 1, 4, 2, 3)  # (N,C,H,W) / (B,T,C,H,W)
    with torch.inference_mode():
        return model.eval()(transform(t.contiguous())).numpy()


def extractor(name: str, weights: str = "none", seed: int = 0, **kw: Any) -> FeatureExtractor:
    cfg = FeaturesConfig(model=name, weights=weights, device="cpu", precision="fp32", **kw)
    return FeatureExtractor(cfg, seed=seed)


@pytest.fixture(scope="module")
def r18() -> FeatureExtractor:
    return extractor("resnet18")


@pytest.fixture(scope="module")
def r18_state() -> dict[str, Any]:
    torch.manual_seed(3)
    return torchvision.models.resnet18().state_dict()


# --- registry ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_registry_matches_torchvision(name: str) -> None:
    """Kind, dim, head and default input of every entry agree with torchvision (built on the meta device: free)."""
    spec = MODELS[name]
    default = torchvision.models.get_model_weights(name).DEFAULT
    assert f"{type(default).__name__}.{default.name}" == f"{spec.weights_enum}.{spec.default_weights}"
    choice = models.WeightsChoice("none", "none", default)
    assert models.input_spec_for(spec, choice) == spec.input
    with torch.device("meta"):
        head = torchvision.models.get_model(name).get_submodule(spec.head)
    assert (getattr(head, "in_features", None) or head.in_channels) == spec.dim
    assert (spec.kind == "3d") == (spec.clip_len is not None) == ("clip_frames" in spec.default_split)


def test_list_models_rows() -> None:
    rows = list_models()
    assert [r["name"] for r in rows] == list(MODELS)
    assert {r["kind"] for r in rows} == {"2d", "3d"} and all(r["dim"] > 0 and r["input"] for r in rows)


def test_importing_features_does_not_import_torch() -> None:
    code = "import sys, vidprep.stages.features, vidprep.stages.normalize; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet1000'"):
        models.get_spec("resnet1000")


# --- exactness --------------------------------------------------------------------------------------------------


def test_resnet18_random_init_matches_torchvision(r18: FeatureExtractor) -> None:
    x = frames(2)
    got = r18.extract_frames(x)
    assert got.shape == (2, 512) and got.dtype == np.float32
    assert_close(got, reference("resnet18", x))


def test_resnet18_state_dict_file_matches_torchvision(tmp_path: Path, r18_state: dict[str, Any]) -> None:
    path = tmp_path / "r18.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in r18_state.items()}}, path)
    ex = extractor("resnet18", str(path), batch_size=2)
    x = frames(2, seed=1)
    assert_close(ex.extract_frames(x), reference("resnet18", x, r18_state))
    info = ex.describe()
    assert info["source"] == "file" and info["sha256"] == models.sha256_of(path) and info["precision"] == "fp32"


def test_r3d_18_matches_torchvision(tmp_path: Path) -> None:
    """One 3D model, random init then a state dict file, on tiny 112x112 clips (8 and 4 frames: 3D models take any
    clip length, and a 16-frame r3d_18 clip costs 40 GFLOPs, too slow for a unit test on two cores)."""
    clips = np.random.default_rng(2).integers(0, 256, (2, 8, 112, 112, 3), dtype=np.uint8)
    ex = extractor("r3d_18")
    assert_close(ex.extract_clips(clips), reference("r3d_18", clips))
    torch.manual_seed(5)
    state = torchvision.models.video.r3d_18().state_dict()
    torch.save(state, tmp_path / "r3d.pth")
    ex_file = extractor("r3d_18", str(tmp_path / "r3d.pth"))
    short = clips[:1, ::2]
    assert_close(ex_file.extract_clips(short), reference("r3d_18", short, state))
    with pytest.raises(ConfigError, match="3D video model"):
        ex.extract_frames(clips[0])


def test_seed_determinism(r18: FeatureExtractor) -> None:
    x = frames(1, 40, 30)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = extractor("resnet18", seed=0)
    assert torch.equal(torch.rand(1), before), "building a model must not disturb the caller's RNG"
    assert np.array_equal(again.extract_frames(x), r18.extract_frames(x))
    other = extractor("resnet18", seed=1).extract_frames(x)
    with pytest.raises(AssertionError):
        assert_close(other, r18.extract_frames(x))


def test_batching_clips_pooling_and_empty_input(r18: FeatureExtractor) -> None:
    x = frames(3, 32, 48)
    whole = r18.extract_frames(x)
    small = extractor("resnet18", batch_size=2, pool="max")
    assert_close(small.extract_frames(x), whole)
    assert_close(r18.extract_clips(x[None]), whole.mean(0, keepdims=True))
    assert_close(small.extract_clips(x[None]), whole.max(0, keepdims=True))
    assert r18.extract_frames(x[:0]).shape == (0, 512)
    with pytest.raises(ValueError, match="uint8"):
        r18.extract_frames(x.astype(np.float32))


def test_pool_frames() -> None:
    f = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(pool_frames(f, "mean"), f.mean(0))
    assert np.array_equal(pool_frames(f, "max"), f[2])
    assert pool_frames(f, "none") is f
    assert pool_frames(np.stack([f, f]), "mean").shape == (2, 4)
    with pytest.raises(ValueError):
        pool_frames(f, "median")


def test_describe_and_preprocess_spec(r18: FeatureExtractor) -> None:
    info = r18.describe()
    assert info["model"] == "resnet18" and info["weights"] == "none" and info["seed"] == 0
    assert info["device"] == "cpu" and info["dim"] == r18.dim == 512 and info["batch_size"] >= 2
    assert r18.preprocess_spec() == {"resize": [256], "crop": [224, 224], "mean": [0.485, 0.456, 0.406],
                                     "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "antialias": True,
                                     "clip_len": None}


# --- weights refusals -------------------------------------------------------------------------------------------


class Evil:
    """A pickle that would create a marker file if it were ever unpickled by a full unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def one_line_weights_error(name: str, weights: str) -> str:
    with pytest.raises(WeightsError) as info:
        extractor(name, weights)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, UsageError)
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "no such weights file" in one_line_weights_error("resnet18", str(tmp_path / "nope.pth"))


def test_truncated_file(tmp_path: Path, r18_state: dict[str, Any]) -> None:
    path = tmp_path / "cut.pth"
    torch.save(r18_state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "truncated or corrupt" in one_line_weights_error("resnet18", str(path))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_of_a_list(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert "not a state dict (got list" in one_line_weights_error("resnet18", str(tmp_path / "list.pt"))
    with open(tmp_path / "raw.pkl", "wb") as fh:
        pickle.dump([1, 2, 3], fh)
    one_line_weights_error("resnet18", str(tmp_path / "raw.pkl"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_never_run(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save({"conv1.weight": Evil(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Evil(marker)))
    message = one_line_weights_error("resnet18", str(path))
    assert "refused" in message or "not a readable" in message
    assert not marker.exists()


def test_state_dict_mismatch_lists_keys(tmp_path: Path, r18_state: dict[str, Any]) -> None:
    state = dict(r18_state)
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    message = one_line_weights_error("resnet18", str(tmp_path / "bad.pth"))
    assert "missing keys (layer1.0.conv1.weight)" in message and "unexpected keys (extra.weight)" in message
    torch.save({**r18_state, "conv1.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "shape.pth")
    assert "shape mismatch" in one_line_weights_error("resnet18", str(tmp_path / "shape.pth"))


def test_unknown_and_foreign_weights_names() -> None:
    assert "unknown weights 'IMAGENET1K_V9'" in one_line_weights_error("resnet18", "IMAGENET1K_V9")
    assert "not weights for resnet18" in one_line_weights_error("resnet18", "R3D_18_Weights.KINETICS400_V1")
    spec = MODELS["resnet50"]
    assert models.resolve_weights(spec, "IMAGENET1K_V1").id == "ResNet50_Weights.IMAGENET1K_V1"
    assert models.resolve_weights(spec, "DEFAULT").id == "ResNet50_Weights.IMAGENET1K_V2"
    v1 = models.input_spec_for(spec, models.resolve_weights(spec, "ResNet50_Weights.IMAGENET1K_V1"))
    assert v1.resize == (256,)


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub checkpoint dir, offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(models.OFFLINE_ENV, "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_offline_default_names_the_file_to_provide(hub: Path) -> None:
    message = one_line_weights_error("resnet18", "DEFAULT")
    assert str(hub / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert not hub.exists()


def test_hub_file_is_checked_then_used(hub: Path, r18_state: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    hub.mkdir(parents=True)
    torch.save(r18_state, hub / "resnet18-f37072fd.pth")
    assert "is corrupt" in one_line_weights_error("resnet18", "DEFAULT")
    monkeypatch.setattr(models.torchvision, "_hash_prefix", lambda path: None)
    ex = extractor("resnet18", "ResNet18_Weights.IMAGENET1K_V1")
    assert ex.describe()["file"] == str(hub / "resnet18-f37072fd.pth")
    x = frames(1, seed=4)
    assert_close(ex.extract_frames(x), reference("resnet18", x, r18_state))


# --- runtime ----------------------------------------------------------------------------------------------------


def test_precision_rules(tmp_path: Path) -> None:
    native, plain = tmp_path / "native", tmp_path / "plain"
    native.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_tile\n")
    plain.write_text("processor : 0\nflags : fpu avx2 fma\n")
    assert runtime.cpu_has_native_bf16(native) and not runtime.cpu_has_native_bf16(plain)
    assert not runtime.cpu_has_native_bf16(tmp_path / "absent")
    assert runtime.pick_precision("cuda", "auto") == "fp16"
    assert runtime.pick_precision("mps", "auto") == "fp32"
    assert runtime.pick_precision("cpu", "bf16") == "bf16"
    expected = "bf16" if runtime.cpu_has_native_bf16() else "fp32"
    assert runtime.pick_precision("cpu", "auto") == expected


def test_threads_and_devices(tmp_path: Path) -> None:
    assert 1 <= threads.available_cpus() <= (os.cpu_count() or 1)
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert threads._cgroup_quota(str(quota)) == 1
    quota.write_text("max 100000\n")
    assert threads._cgroup_quota(str(quota)) is None
    assert runtime.pick_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        runtime.pick_device("tpu")
    assert runtime.default_batch_size("2d", "cpu") > 1 and runtime.default_batch_size("3d", "cuda") > 1
