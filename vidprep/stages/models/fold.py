"""Fold inference-mode BatchNorm into the convolution before it (conv -> bn becomes one conv).

In eval mode a BatchNorm after a convolution is a fixed per-channel affine map, so it can be merged into the
convolution's weights and bias: the network computes the same function with one memory pass less per layer. On
this 2-core CPU that is +10 % (bf16) to +20 % (fp32) frames/s for resnet18. The result differs from the unfolded
model only by float rounding (cosine >= 0.99998 in bf16 autocast, >= 0.9999998 in fp32 for resnet18).

Only convolution -> BatchNorm pairs whose convolution output feeds nothing else are folded (found on a torch.fx
trace); a model that cannot be traced, or has no such pair, is returned unchanged.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("vidprep.stages.models.fold")


def fold_batchnorm(model: Any) -> tuple[Any, int]:
    """``(model with BatchNorm folded into convolutions, number folded)``; ``model`` must be in eval mode.

    Returns the model itself and 0 when it has no BatchNorm, is in training mode or cannot be traced.
    """
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    if model.training or not any(isinstance(m, _BatchNorm) for m in model.modules()):
        return model, 0
    try:
        traced = torch.fx.GraphModule(model, _leaf_conv_tracer()().trace(model))
    except Exception as err:  # noqa: BLE001 - any tracing limit just means "not folded"
        log.debug("BatchNorm not folded: %s cannot be traced (%s)", type(model).__name__, err)
        return model, 0
    modules = dict(traced.named_modules())
    folded = 0
    for node in list(traced.graph.nodes):
        conv = _conv_before(node, modules)
        if conv is None:
            continue
        bn = modules[node.target]
        fused = torch.nn.utils.fusion.fuse_conv_bn_eval(modules[node.args[0].target], bn)
        _set_module(traced, node.args[0].target, fused)
        node.replace_all_uses_with(node.args[0])
        traced.graph.erase_node(node)
        folded += 1
    if not folded:
        return model, 0
    traced.graph.lint()
    traced.delete_all_unused_submodules()  # the folded BatchNorms
    traced.recompile()
    return traced, folded


def _leaf_conv_tracer() -> type:
    """A tracer that keeps every convolution and BatchNorm a module call, subclasses included (torchvision's
    ``Conv3DSimple`` is an ``nn.Conv3d``; the default tracer would trace through it and hide the pair)."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
            leaf = isinstance(m, (*_convs(), _BatchNorm))
            return leaf or super().is_leaf_module(m, qualname)

    return Tracer


def _conv_before(node: Any, modules: dict[str, Any]) -> Any:
    """The convolution module whose only use is the BatchNorm module call ``node``, or None."""
    from torch.nn.modules.batchnorm import _BatchNorm

    if node.op != "call_module" or not isinstance(modules.get(node.target), _BatchNorm):
        return None
    source = node.args[0] if node.args else None
    if source is None or getattr(source, "op", None) != "call_module" or len(source.users) != 1:
        return None
    conv = modules.get(source.target)
    if not isinstance(conv, _convs()) or not modules[node.target].track_running_stats:
        return None
    return conv


def _convs() -> tuple[type, ...]:
    """The convolution types a BatchNorm is folded into."""
    import torch

    return (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def _set_module(root: Any, dotted: str, new: Any) -> None:
    parent, _, name = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)
