"""BatchNorm folding: the folded network computes the unfolded one's function (to float rounding)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from vidprep.stages.models.fold import fold_batchnorm


def _with_stats(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial running statistics and affine parameters, so a wrong fold shows."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) * 0.2 - 0.1)
    return model.eval()


@pytest.mark.parametrize(("name", "shape", "pairs"), [
    ("resnet18", (2, 3, 64, 64), 20), ("r3d_18", (1, 3, 4, 32, 32), 20)])
def test_folded_network_equals_unfolded(name: str, shape: tuple[int, ...], pairs: int) -> None:
    builder = getattr(torchvision.models, name, None) or getattr(torchvision.models.video, name)
    model = _with_stats(builder(weights=None))
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    folded, n = fold_batchnorm(model)
    assert n == pairs
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


class SharedConv(torch.nn.Module):
    """A conv output used by a BatchNorm and by a skip connection: folding would change the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_conv_with_other_uses_is_not_folded() -> None:
    model = _with_stats(SharedConv())
    assert fold_batchnorm(model) == (model, 0)


def test_training_mode_and_models_without_batchnorm_unchanged() -> None:
    model = torchvision.models.resnet18(weights=None)
    assert fold_batchnorm(model.train()) == (model, 0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    assert fold_batchnorm(plain) == (plain, 0)


class Untraceable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: symbolic tracing fails
            return self.bn(self.conv(x))
        return x


def test_untraceable_model_is_returned_unchanged() -> None:
    model = Untraceable().eval()
    assert fold_batchnorm(model) == (model, 0)
