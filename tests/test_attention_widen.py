"""nn.MultiheadAttention under autocast with bf16 inputs: vidprep's pre-hook puts it back on PyTorch's fused path
(the slow one, with a weight copy per token, made open_clip 4x slower in bf16), to bf16 rounding."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vidprep.stages.models.attention import widen_attention_inputs


class SeenOps(TorchDispatchMode):
    """Records every aten op with the shapes and strides of its tensor arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, list[tuple[tuple[int, ...], tuple[int, ...]]]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops.append((str(func), [(tuple(a.shape), a.stride()) for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


def attention(hooked: bool) -> torch.nn.MultiheadAttention:
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    return widen_attention_inputs(module)[0] if hooked else module


def run(module: torch.nn.MultiheadAttention, x: torch.Tensor, **kwargs: object) -> tuple[torch.Tensor, list]:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16), SeenOps() as seen:
        out = module(x, x, x, need_weights=False, **kwargs)[0]
    return out.float(), seen.ops


def test_bf16_inputs_take_the_fused_path() -> None:
    x = torch.randn(3, 10, 64).to(torch.bfloat16)  # a residual stream kept in bf16, as open_clip's is
    slow, slow_ops = run(attention(False), x)
    fast, fast_ops = run(attention(True), x)
    # PyTorch's slow path: the packed projection of the transposed (L, N, E) input, which matmul cannot fold
    assert ("aten.linear.default", [((10, 3, 64), (64, 640, 1)), ((192, 64), (64, 1)), ((192,), (1,))]) in slow_ops
    assert "aten._native_multi_head_attention.default" not in {op for op, _ in slow_ops}
    assert "aten._native_multi_head_attention.default" in {op for op, _ in fast_ops}
    assert not any(op == "aten.linear.default" and len(args[0][0]) == 3 for op, args in fast_ops)
    cosine = torch.nn.functional.cosine_similarity(slow.flatten(1), fast.flatten(1))
    assert cosine.min() >= 0.999, cosine


def test_float_mask_and_float32_inputs() -> None:
    """A bf16 additive mask (open_clip's text tower passes one) is widened with the inputs; float32 inputs, or no
    autocast, pass through untouched."""
    x = torch.randn(2, 6, 64)
    mask = torch.triu(torch.full((6, 6), float("-inf")), 1)
    ref, _ = run(attention(False), x, attn_mask=mask)
    got, _ = run(attention(True), x.to(torch.bfloat16), attn_mask=mask.to(torch.bfloat16))
    assert torch.nn.functional.cosine_similarity(ref.flatten(1), got.flatten(1)).min() >= 0.999
    module = attention(True)
    with torch.inference_mode():
        plain = module(x, x, x, need_weights=False)[0]
        assert torch.equal(plain, attention(False)(x, x, x, need_weights=False)[0])


def test_extractor_hooks_attention_only_under_autocast(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A bf16 open_clip extractor hooks each attention module (recorded in its description); fp32 hooks none."""
    import numpy as np

    import tiny_models as tm
    from vidprep.config import FeaturesConfig
    from vidprep.stages.features import FeatureExtractor

    model = f"open_clip:{tm.open_clip_dir(tmp_path)}"
    bf16 = FeatureExtractor(FeaturesConfig(model=model, weights="DEFAULT", precision="bf16"))
    fp32 = FeatureExtractor(FeaturesConfig(model=model, weights="DEFAULT", precision="fp32"))
    attentions = sum(isinstance(m, torch.nn.MultiheadAttention) for m in fp32.model.modules())
    assert attentions > 0
    assert bf16.describe()["attention_inputs_widened"] == attentions and fp32.describe()["attention_inputs_widened"] == 0
    frames = np.random.default_rng(0).integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)
    a, b = bf16.extract_frames(frames), fp32.extract_frames(frames)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99, cos
