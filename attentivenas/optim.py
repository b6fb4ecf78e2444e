"""The SGD recipe shared by supernet training and DSNAS: parameter groups, LR scaling, warm-up + cosine."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attentivenas.specs import DsnasSpec, TrainingSpec

SgdRecipe = TrainingSpec | DsnasSpec
"""A recipe with the SGD keys: lr, lr_scaling, batch_size, momentum, nesterov, weight_decay."""


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two SGD groups: decayed weights, and BN parameters plus all biases without weight decay."""
    no_decay = set()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    for name, parameter in model.named_parameters():
        if name.endswith("bias"):
            no_decay.add(id(parameter))
    parameters = list(model.parameters())
    return [{"params": [p for p in parameters if id(p) not in no_decay], "weight_decay": weight_decay},
            {"params": [p for p in parameters if id(p) in no_decay], "weight_decay": 0.0}]


def peak_lr(recipe: SgdRecipe) -> float:
    """`lr` per 256 images, scaled with the batch: linearly, or by the reference's max(1, batch // 256)."""
    if recipe.lr_scaling == "reference":
        return recipe.lr * max(1, recipe.batch_size // 256)
    return recipe.lr * recipe.batch_size / 256


def build_optimizer(model: nn.Module, recipe: SgdRecipe, *, fused: bool | None = None) -> torch.optim.SGD:
    """SGD; `fused` (CUDA) lets an fp16 loss scaler skip inf steps without reading a flag on the host."""
    nesterov = recipe.nesterov and recipe.momentum > 0
    return torch.optim.SGD(parameter_groups(model, recipe.weight_decay), lr=peak_lr(recipe),
                           momentum=recipe.momentum, nesterov=nesterov, fused=fused)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                  start_factor: float) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up from `start_factor` x the peak LR over `warmup_steps`, then a cosine to 0 at `total_steps`."""
    warmup_steps = min(warmup_steps, total_steps)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps == 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=start_factor, end_factor=1.0,
                                               total_iters=warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
