"""DSNAS: architecture logits and supernet weights learnt together, then the argmax child trained on.

Every gene of the space (resolution; stem, per-stage and head width; per-stage depth, kernel and expand
ratio) is one decision with a categorical distribution over its choices (learnable logits). Each step
samples a one-hot choice per decision, only that subnet runs, and one backward pass on the minibatch
gives both the weight gradients and the architecture gradients.

Gates. The sampled one-hot vector Z of each unfrozen decision is a leaf tensor. Its chosen entry z
(value 1) scales what the chosen option adds over the decision's smallest option, where that addition
enters the forward pass, as out + (z - 1) * increment: bit-identical outputs and weight gradients at
z = 1, dL/dz = <dL/dout, increment>, and at z = 0 the network is the smallest option's:

- width (stem, stage i, head): the channels beyond the smallest width, of the stem output, of every
  active block's output, of the classifier input; and all the width sets downstream: the expanded
  (and SE squeeze) channels of the blocks it feeds, the head's expanded channels after the last
  stage, and the shortcut kind. A stage's first block has no conv on its shortcut (a pool when
  strided) when its widths are equal and a 1x1 conv when they differ (the reference's rule), so
  where the smallest width (of its own stage or of the one before) would switch that kind, the gate
  scales the difference between the two kinds' shortcut outputs: z = 0 gives the other kind;
- kernel size of stage i: the depthwise output minus what the centre crop of the smallest kernel gives
  (the outer ring), in every active block, before the depthwise BN (it normalises the sum, so it
  cannot cancel a scale of one part);
- expand ratio of stage i: the expanded channels beyond the smallest ratio's, at the depthwise output
  (after its BN, before SE) and the SE squeeze units they add, in every active block;
- depth of stage i: the residual branch of every optional block (beyond the smallest depth); z = 0
  turns those blocks into their identity shortcut, exactly the smallest depth;
- resolution: the input minus its round trip through the smallest resolution (the detail the larger
  input adds), at the stem's input.

Exactly so (tested) for every kind but resolution, whose z = 0 only approximates it. So each
decision's credit is its own: a first-order estimate of L(chosen) - L(smallest option). The
smallest option's credit is 0, which loses no generality: a baseline common to all options of a
decision leaves the expected gradient unchanged.

Estimator. The gradient of the expected loss is E_Z[L(Z) grad log p(Z)] (score function). DSNAS replaces
L by its first-order term in the sampled gate, dL/dz at z = 1: L(Z) = L(z = 0) + dL/dz + O(2nd order),
and the zeroed term acts as a per-sample baseline that is dropped. So the architecture gradient of each
decision's logits is (dL/dz) * grad log p(c) = (dL/dz) * (onehot(c) - softmax(logits)): unbiased when L
is linear in the gated output (tested), low-bias and much lower-variance than raw REINFORCE otherwise.
It is applied explicitly through the surrogate sum_d credit_d * log p_d(c_d) with detached credits.

FLOPs. With `flops_penalty_side: above` (the reference's) the penalty acts only when the sampled
subnet exceeds the target; with `both` (a soft target, as MnasNet and FBNet set one) it also acts
below the target, in the other direction. Either (`flops_penalty_kind: score_function`)
penalty * (mflops / target - 1), clipped at 0 (above) or its absolute value (both), is added to
every credit (REINFORCE), or (`differentiable`, the reference's resource loss)
s * penalty * sum_d sum_c p_d(c) * mflops(sample with d := c) / target is added to the surrogate:
each decision's expected FLOPs with the other decisions as sampled, with s = +1 above the target and,
below it, 0 (above) or -1 (both: more FLOPs are rewarded), the slope of the penalty at the sample.
Why `both`: at the short budgets of our runs the accuracy credits are small and lean towards the
smallest options (measured: a positive mean for every decision kind), and samples rarely exceed a
high target, so with a one-sided penalty nothing holds the distribution up and the child drifts to the
smallest subnet whatever the target (README, "Differences from the reference").

A decision whose top probability leads the runner-up by `fix_margin` is frozen at its argmax: no more
sampling, gating or updates. Decisions with one choice are frozen from the start. After `epochs` of
search every decision is fixed at its argmax and the child alone trains on for `child_epochs`, on the
inherited weights (the reference's continued training of the derived child).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attentivenas.checkpoint import load_checkpoint, restore_weights, save_checkpoint, supernet_state
from attentivenas.data import build_splits, make_loader
from attentivenas.errors import UserInputError
from attentivenas.evaluation import evaluator_for
from attentivenas.flops import count, flops_range, mflops
from attentivenas.io import write_json
from attentivenas.optim import build_optimizer, warmup_cosine
from attentivenas.run_loop import EpochOrder, RunLoop, check_finite, run_identity
from attentivenas.runtime import resolve_device, seed_everything, use_channels_last
from attentivenas.space import SearchSpace, Subnet, expanded_channels, se_channels
from attentivenas.specs import DsnasJob, DsnasSpec
from attentivenas.static import adapt_resolution
from attentivenas.supernet import DynamicBlock, Supernet


class DSNASError(UserInputError):
    """A DSNAS run cannot start with the given target, init or resume state."""


# ---------------------------------------------------------------- the estimator

def sample_choice(probabilities: torch.Tensor, generator: torch.Generator) -> int:
    return int(torch.multinomial(probabilities.detach().float().cpu(), 1, generator=generator))


def one_hot_gate(num_choices: int, choice: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The sampled Z: a one-hot leaf tensor whose gradient after backward is dL/dZ."""
    return F.one_hot(torch.tensor(choice), num_choices).to(device, torch.float32).requires_grad_()


def architecture_surrogate(logits: Sequence[torch.Tensor], choices: Sequence[int],
                           credits: Sequence[torch.Tensor | float]) -> torch.Tensor:
    """sum_d credit_d * log p_d(c_d); its gradient wrt each logits vector is credit * grad log p(c)."""
    terms = [torch.as_tensor(credit).detach().to(theta.device) * F.log_softmax(theta, -1)[choice]
             for theta, choice, credit in zip(logits, choices, credits, strict=True)]
    return torch.stack(terms).sum()


def flops_penalty(sampled_mflops: float, target_mflops: float, weight: float, side: str = "above") -> float:
    """weight * (mflops / target - 1) above the target and 0 at or below it (`above`), or
    weight * |mflops / target - 1| on both sides (`both`, a soft target): the slope times the excess."""
    slope = flops_penalty_slope(sampled_mflops, target_mflops, side)
    return weight * slope * (sampled_mflops / target_mflops - 1.0)


def flops_penalty_slope(sampled_mflops: float, target_mflops: float, side: str = "above") -> float:
    """d penalty / d (mflops / target) per unit weight at the sample: 1 above the target; below it 0
    (`above`) or -1 (`both`: the penalty then rewards more FLOPs); 0 exactly at it."""
    if sampled_mflops > target_mflops:
        return 1.0
    return -1.0 if side == "both" and sampled_mflops < target_mflops else 0.0


def expected_flops_penalty(logits: Sequence[torch.Tensor], per_choice_mflops: Sequence[torch.Tensor],
                           target_mflops: float, weight: float) -> torch.Tensor:
    """weight * sum_d sum_c p_d(c) * mflops_d(c) / target: differentiable in every decision's logits."""
    return weight * sum(F.softmax(theta, -1) @ cost.to(theta) for theta, cost in
                        zip(logits, per_choice_mflops, strict=True)) / target_mflops


# ---------------------------------------------------------------- the distribution

class ArchitectureDistribution(nn.Module):
    """One categorical distribution per gene; `frozen_choice` is -1 while a decision is still searched."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.logits = nn.ParameterList([nn.Parameter(torch.zeros(len(g.choices))) for g in space.genes])
        single = torch.tensor([len(g.choices) == 1 for g in space.genes])
        self.register_buffer("frozen_choice", torch.where(single, 0, -1))
        self.register_buffer("frozen_step", torch.where(single, 0, -1))
        self.positions = {(g.field, g.index): i for i, g in enumerate(space.genes)}

    def is_frozen(self, position: int) -> bool:
        return int(self.frozen_choice[position]) >= 0

    @property
    def num_frozen(self) -> int:
        return int((self.frozen_choice >= 0).sum())

    def probabilities(self) -> list[torch.Tensor]:
        return [F.softmax(theta.detach(), -1) for theta in self.logits]

    def sample(self, generator: torch.Generator, uniform: bool = False) -> list[int]:
        """A choice index per gene: frozen ones fixed, the others drawn (uniformly when `uniform`)."""
        choices = []
        for frozen, theta in zip(self.frozen_choice.tolist(), self.logits, strict=True):
            if frozen >= 0:
                choices.append(frozen)
            else:
                probabilities = torch.ones(len(theta)) if uniform else F.softmax(theta.detach(), -1)
                choices.append(sample_choice(probabilities, generator))
        return choices

    def subnet(self, choices: Sequence[int]) -> Subnet:
        return self.space.from_genes([g.choices[c] for g, c in zip(self.space.genes, choices, strict=True)])

    def argmax_choices(self) -> list[int]:
        return [frozen if frozen >= 0 else int(theta.detach().argmax())
                for frozen, theta in zip(self.frozen_choice.tolist(), self.logits, strict=True)]

    def gates(self, choices: Sequence[int]) -> Gates:
        device = self.logits[0].device
        z = [None if frozen >= 0 else one_hot_gate(len(theta), c, device)
             for frozen, theta, c in zip(self.frozen_choice.tolist(), self.logits, choices, strict=True)]
        return Gates(self, list(choices), z)

    def entropy(self) -> float:
        """Total entropy (nats) of the decisions still searched."""
        pairs = zip(self.frozen_choice.tolist(), self.probabilities(), strict=True)
        return sum(float(torch.special.entr(p).sum()) for frozen, p in pairs if frozen < 0)

    def freeze_confident(self, margin: float, step: int) -> list[int]:
        """Freeze every searched decision whose top probability leads the runner-up by `margin`."""
        newly = []
        pairs = zip(self.frozen_choice.tolist(), self.probabilities(), strict=True)
        for position, (frozen, probabilities) in enumerate(pairs):
            if frozen >= 0:
                continue
            top = torch.topk(probabilities, 2).values
            if float(top[0] - top[1]) >= margin:
                self.frozen_choice[position] = int(probabilities.argmax())
                self.frozen_step[position] = step
                newly.append(position)
        return newly

    def fix_all(self, step: int) -> None:
        """Freeze every decision still searched at its argmax (the child is derived)."""
        for position in range(len(self.logits)):
            if not self.is_frozen(position):
                self.frozen_choice[position] = int(self.logits[position].detach().argmax())
                self.frozen_step[position] = step

    def describe(self) -> dict[str, dict[str, Any]]:
        """Per decision: choices, final probabilities, and the frozen choice and step (None if searched)."""
        described = {}
        for i, (gene, probabilities) in enumerate(zip(self.space.genes, self.probabilities(), strict=True)):
            frozen = self.is_frozen(i)
            described[gene.label] = {
                "choices": list(gene.choices), "probabilities": [round(float(p), 6) for p in probabilities],
                "frozen_choice": gene.choices[int(self.frozen_choice[i])] if frozen else None,
                "frozen_step": int(self.frozen_step[i]) if frozen else None}
        return described


def choice_mflops(distribution: ArchitectureDistribution, choices: Sequence[int], position: int) -> torch.Tensor:
    """MFLOPs of the sampled subnet with decision `position` set to each of its options in turn."""
    costs = []
    for option in range(len(distribution.logits[position])):
        varied = list(choices)
        varied[position] = option
        costs.append(mflops(distribution.space, distribution.subnet(varied)))
    return torch.tensor(costs)


@dataclass
class Gates:
    """The sampled Z vectors of one step (None for frozen decisions)."""

    distribution: ArchitectureDistribution
    choices: list[int]
    z: list[torch.Tensor | None]

    def gate(self, field: str, index: int | None) -> torch.Tensor | None:
        position = self.distribution.positions[(field, index)]
        z = self.z[position]
        return None if z is None else z[self.choices[position]]

    def credits(self) -> dict[int, torch.Tensor]:
        """dL/dz at the chosen entry of every gated decision, after backward (0 for a smallest option)."""
        return {position: z.new_zeros(()) if z.grad is None else z.grad[self.choices[position]]
                for position, z in enumerate(self.z) if z is not None}


def _scale_increment(output: torch.Tensor, increment: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """output + (gate - 1) * increment: the output itself at gate 1, d/dgate = increment."""
    return output + (gate - 1) * increment


def _channels_beyond(tensor: torch.Tensor, first: int) -> torch.Tensor:
    """The tensor with its first `first` channels (dim 1) zeroed."""
    mask = torch.zeros(tensor.shape[1], dtype=tensor.dtype, device=tensor.device)
    mask[first:] = 1
    return tensor * mask.view(1, -1, *([1] * (tensor.dim() - 2)))


def _gate_output_channels(first: int, gate: torch.Tensor):
    return lambda module, inputs, output: _scale_increment(output, _channels_beyond(output, first), gate)


def _gate_input_channels(first: int, gate: torch.Tensor):
    return lambda module, inputs: (_scale_increment(inputs[0], _channels_beyond(inputs[0], first), gate),
                                   *inputs[1:])


def _gate_kernel_ring(smallest: int, gate: torch.Tensor):
    """Depthwise conv hook: its output minus the smallest kernel's (centre crop) output is gated."""
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            centre = module.forward(inputs[0], kernel_size=smallest)
        return _scale_increment(output, output.detach() - centre, gate)
    return hook


def _gate_shortcut_output_width(narrowest: int, gate: torch.Tensor):
    """Shortcut hook: its leading `narrowest` channels minus those of the narrowest width's shortcut
    (the other kind: a pool where ours is pool + conv, or the reverse) are gated. The channels beyond
    are the block output gate's."""
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            narrow = module.forward(inputs[0], narrowest)
            increment = F.pad(output[:, :narrowest] - narrow, (0, 0, 0, 0, 0, output.shape[1] - narrowest))
        return _scale_increment(output, increment, gate)
    return hook


def _gate_shortcut_input_width(narrowest: int, gate: torch.Tensor):
    """Shortcut hook: ours minus the narrowest input width's shortcut (the other kind), both on the
    input as the closed input gate leaves it (its leading `narrowest` channels), is gated."""
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        x, out_channels = inputs
        with torch.no_grad():
            kept = x - _channels_beyond(x, narrowest)
            increment = module.forward(kept, out_channels) - module.forward(x[:, :narrowest], out_channels)
        return _scale_increment(output, increment, gate)
    return hook


def _gate_resolution_detail(smallest: int, mode: str, gate: torch.Tensor):
    """Stem pre-hook: the input minus its round trip through the smallest resolution is gated."""
    def hook(module: nn.Module, inputs: tuple) -> tuple:
        x = inputs[0]
        with torch.no_grad():
            coarse = adapt_resolution(adapt_resolution(x, smallest, mode), x.shape[-1], mode)
        return (_scale_increment(x, x - coarse, gate), *inputs[1:])
    return hook


def _scale_output(gate: torch.Tensor):
    return lambda module, inputs, output: output * gate


def _shortcut_is_identity_or_pool(in_channels: int, out_channels: int) -> bool:
    """The reference's rule: no conv on the shortcut exactly when its widths are equal."""
    return in_channels == out_channels


@contextmanager
def gated(supernet: Supernet, gates: Gates | None) -> Iterator[None]:
    """Put each decision's gate where its option enters the forward (module docstring), via torch hooks.

    A decision at its smallest option adds nothing to gate; its credit stays 0.
    """
    if gates is None:
        yield
        return
    subnet, space = supernet.active_subnet, supernet.space
    handles = []

    def forward_hook(module: nn.Module, gate: torch.Tensor | None, needed: bool, make) -> None:
        if gate is not None and needed:
            handles.append(module.register_forward_hook(make(gate)))

    def pre_hook(module: nn.Module, gate: torch.Tensor | None, needed: bool, make) -> None:
        if gate is not None and needed:
            handles.append(module.register_forward_pre_hook(make(gate)))

    def gate_mid_channels(block: DynamicBlock, mid: int, fewest: int, gate: torch.Tensor | None) -> None:
        """Expanded channels beyond `fewest`, at the depthwise output, and their SE squeeze units."""
        forward_hook(block.depthwise, gate, mid > fewest, lambda g: _gate_output_channels(fewest, g))
        if block.se is not None:
            forward_hook(block.se.fc1, gate, se_channels(mid) > se_channels(fewest),
                         lambda g: _gate_output_channels(se_channels(fewest), g))

    smallest_resolution = min(space.resolutions)
    pre_hook(supernet.stem, gates.gate("resolution", None), subnet.resolution > smallest_resolution,
             lambda g: _gate_resolution_detail(smallest_resolution, supernet.resolution_mode, g))
    narrowest_stem = min(space.stem_widths)
    forward_hook(supernet.stem, gates.gate("width", 0), subnet.width[0] > narrowest_stem,
                 lambda g: _gate_output_channels(narrowest_stem, g))
    narrowest_before = narrowest_stem
    for i, (stage, spec) in enumerate(zip(supernet.stages, space.stages, strict=True)):
        width, kernel, expand = subnet.width[i + 1], subnet.kernel_size[i], subnet.expand_ratio[i]
        gate_width, gate_kernel = gates.gate("width", i + 1), gates.gate("kernel_size", i)
        gate_expand, gate_depth = gates.gate("expand_ratio", i), gates.gate("depth", i)
        narrowest, smallest_kernel = min(spec.widths), min(spec.kernels)
        for b, block in enumerate(stage[: subnet.depth[i]]):
            block_in, narrowest_in = (subnet.width[i], narrowest_before) if b == 0 else (width, narrowest)
            gate_in = gates.gate("width", i) if b == 0 else gate_width
            forward_hook(block, gate_width, width > narrowest, lambda g, n=narrowest: _gate_output_channels(n, g))
            if b == 0:  # later blocks keep an identity shortcut: in and out narrow together
                kind = _shortcut_is_identity_or_pool(block_in, width)
                forward_hook(block.shortcut, gate_width, kind != _shortcut_is_identity_or_pool(block_in, narrowest),
                             lambda g, n=narrowest: _gate_shortcut_output_width(n, g))
                forward_hook(block.shortcut, gate_in, kind != _shortcut_is_identity_or_pool(narrowest_in, width),
                             lambda g, n=narrowest_in: _gate_shortcut_input_width(n, g))
            forward_hook(block.depthwise.conv, gate_kernel, kernel > smallest_kernel,
                         lambda g, k=smallest_kernel: _gate_kernel_ring(k, g))
            if block.expand is None:
                gate_mid_channels(block, block_in, narrowest_in, gate_in)
            else:
                mid = expanded_channels(block_in, expand)
                gate_mid_channels(block, mid, expanded_channels(narrowest_in, expand), gate_in)
                gate_mid_channels(block, mid, expanded_channels(block_in, min(spec.expand_ratios)), gate_expand)
            forward_hook(block.project, gate_depth, b >= min(spec.depths), _scale_output)
        narrowest_before = narrowest
    forward_hook(supernet.head_expand, gates.gate("width", space.num_stages), subnet.width[-2] > narrowest_before,
                 lambda g: _gate_output_channels(space.head_expand * narrowest_before, g))
    narrowest_head = min(space.head_widths)
    pre_hook(supernet.classifier, gates.gate("width", space.num_stages + 1), subnet.width[-1] > narrowest_head,
             lambda g: _gate_input_channels(narrowest_head, g))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------- the joint step

@dataclass(frozen=True)
class StepRecord:
    loss: float
    arch_entropy: float
    sampled_mflops: float
    frozen: int
    lr: float


class DSNAS:
    """One weight-sharing supernet and its architecture distribution, trained jointly one step at a time."""

    def __init__(self, supernet: Supernet, recipe: DsnasSpec, target_mflops: float, total_steps: int,
                 warmup_steps: int, seed: int, search_steps: int | None = None):
        self.supernet = supernet
        self.space = supernet.space
        self.recipe = recipe
        self.target_mflops = target_mflops
        self.warmup_steps = warmup_steps
        self.search_steps = total_steps if search_steps is None else search_steps
        self.device = next(supernet.parameters()).device
        self.distribution = ArchitectureDistribution(self.space).to(self.device)
        self.weight_optimizer = build_optimizer(supernet, recipe)
        self.scheduler = warmup_cosine(self.weight_optimizer, total_steps, warmup_steps=0, start_factor=1.0)
        self.arch_optimizer = torch.optim.Adam(self.distribution.parameters(), lr=recipe.arch_lr,
                                               betas=tuple(recipe.arch_betas), foreach=True)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.generator = torch.Generator().manual_seed(seed)
        self.step_count = 0

    @property
    def searching(self) -> bool:
        """False during the weight-only warm-up, when subnets are drawn uniformly and logits stay put."""
        return self.step_count >= self.warmup_steps

    @property
    def child_fixed(self) -> bool:
        """True once the search steps are done: the argmax child alone trains on."""
        return self.step_count >= self.search_steps

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> StepRecord:
        if self.child_fixed:
            self.distribution.fix_all(self.step_count)
        searching = self.searching
        choices = self.distribution.sample(self.generator, uniform=not searching)
        self.supernet.set_active_subnet(self.distribution.subnet(choices), regularize=self.recipe.regularize)
        self.supernet.train()
        gates = self.distribution.gates(choices) if searching else None
        with gated(self.supernet, gates):
            loss = self.criterion(self.supernet(images), labels)
        self.weight_optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:  # not so with frozen weights and no gate in play
            loss.backward()
        lr = self.scheduler.get_last_lr()[0]
        self.weight_optimizer.step()
        self.scheduler.step()
        sampled = mflops(self.space, self.supernet.active_subnet)
        if searching:
            self.architecture_step(choices, gates.credits(), sampled)
        self.step_count += 1
        return StepRecord(loss=loss.item(), arch_entropy=self.distribution.entropy(), sampled_mflops=sampled,
                          frozen=self.distribution.num_frozen, lr=lr)

    def architecture_step(self, choices: Sequence[int], credits: dict[int, torch.Tensor],
                          sampled_mflops: float) -> None:
        """One Adam step of the logits along the DSNAS estimate plus the FLOPs penalty, then freezing."""
        if not credits:
            return
        weight, kind, side = self.recipe.flops_penalty, self.recipe.flops_penalty_kind, self.recipe.flops_penalty_side
        penalty = flops_penalty(sampled_mflops, self.target_mflops, weight, side) if kind == "score_function" else 0.0
        slope = flops_penalty_slope(sampled_mflops, self.target_mflops, side)
        positions = sorted(credits)
        logits = [self.distribution.logits[i] for i in positions]
        surrogate = architecture_surrogate(logits, [choices[i] for i in positions],
                                           [credits[i] + penalty for i in positions])
        if kind == "differentiable" and slope != 0 and weight > 0:
            per_choice = [choice_mflops(self.distribution, choices, i) for i in positions]
            surrogate = surrogate + expected_flops_penalty(logits, per_choice, self.target_mflops, slope * weight)
        self.arch_optimizer.zero_grad(set_to_none=True)
        surrogate.backward()
        self.arch_optimizer.step()
        self.distribution.freeze_confident(self.recipe.fix_margin, self.step_count)

    def child(self) -> Subnet:
        return self.distribution.subnet(self.distribution.argmax_choices())

    def state_dict(self) -> dict[str, Any]:
        return {"distribution": self.distribution.state_dict(),
                "weight_optimizer": self.weight_optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "arch_optimizer": self.arch_optimizer.state_dict(),
                "generator": self.generator.get_state(), "step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.distribution.load_state_dict(state["distribution"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.generator.set_state(state["generator"])
        self.step_count = state["step_count"]


# ---------------------------------------------------------------- one run

def check_target(space: SearchSpace, target_mflops: float) -> None:
    low, high = flops_range(space)
    if not low <= target_mflops <= high:
        raise DSNASError(f"--target {target_mflops} MFLOPs (config key dsnas.targets_mflops) is outside "
                         f"space {space.name!r}, which spans {low:.3f} to {high:.3f} MFLOPs")


def _identity(job: DsnasJob, space: SearchSpace, target_mflops: float, device: torch.device,
              init_from: str | Path | None) -> dict[str, Any]:
    """Everything that determines the run's result (`run_identity`); other targets are left out."""
    return run_identity({"target_mflops": float(target_mflops), "seed": job.seed, "space": space.to_dict(),
                         "resolution_mode": job.resolution_mode, "data": job.data,
                         "supernet": job.supernet.to_dict(), "dsnas": job.dsnas.to_dict(),
                         "evaluation": job.evaluation.to_dict(), "device": device.type}, {"init_from": init_from})


def _load_init(recipe: DsnasSpec, space: SearchSpace, init_from: str | Path | None) -> dict | None:
    """The warm-up checkpoint's state when `dsnas.init` is warmup; errors when init and flag disagree."""
    if recipe.from_warmup and init_from is None:
        raise DSNASError("config key dsnas.init is 'warmup' but no --init-from checkpoint was given; pass "
                         "the warm-up supernet (results/<name>/warmup/supernet.pt), or set dsnas.init: "
                         "scratch")
    if not recipe.from_warmup and init_from is not None:
        raise DSNASError(f"--init-from {init_from} was given but config key dsnas.init is 'scratch'; "
                         "set dsnas.init: warmup to start from it")
    if init_from is None:
        return None
    return load_checkpoint(init_from, space)


def _steps_per_epoch(recipe: DsnasSpec, train_images: int, source: str) -> int:
    if train_images < recipe.batch_size:
        raise DSNASError(f"config key dsnas.batch_size={recipe.batch_size} exceeds the {train_images} "
                         f"training images of {source}")
    steps = train_images // recipe.batch_size
    return steps if recipe.max_steps_per_epoch is None else min(steps, recipe.max_steps_per_epoch)


class _SearchTask:
    """DSNAS as the run loop's task: each epoch's batches in a seeded order, one joint step each."""

    def __init__(self, search: DSNAS, job: DsnasJob, splits, steps_per_epoch: int):
        self.search, self.job, self.splits, self.steps_per_epoch = search, job, splits, steps_per_epoch

    def batches(self, epoch: int, start: int):
        batch_size = self.search.recipe.batch_size
        order = EpochOrder(len(self.splits.train), batch_size, 1, 0, self.job.seed, epoch, start,
                           self.steps_per_epoch)
        return make_loader(self.splits.train, batch_size, shuffle=False, seed=self.job.seed + epoch,
                           drop_last=True, num_workers=self.job.data["num_workers"], sampler=order)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, Any]:
        device = self.search.device
        images, labels = (tensor.to(device, non_blocking=True) for tensor in batch)
        record = self.search.step(images, labels)
        check_finite(record.loss, step, self.search.supernet.active_subnet, "sampled",
                     "lower config key 'dsnas.lr' or 'dsnas.arch_lr'")
        return {key: round(value, 6) if isinstance(value, float) else value
                for key, value in asdict(record).items()}

    def end_epoch(self, epoch: int) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return self.search.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.search.load_state_dict(state)


def run_dsnas(job: DsnasJob, target_mflops: float, out_dir: str | Path,
              init_from: str | Path | None = None, progress: bool = True,
              on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Search one child at `target_mflops`, evaluate it, write its outputs into `out_dir`; the summary.

    Outputs: child.json, summary.json, metrics.csv,
    supernet.pt and timings.json. A rerun resumes from out_dir/resume.pt, written every
    `dsnas.checkpoint_every_steps` steps and after every epoch; `on_step(step)` follows every step.
    """
    space = SearchSpace.load(job.space)
    recipe = job.dsnas
    check_target(space, target_mflops)
    init_state = _load_init(recipe, space, init_from)
    out_dir = Path(out_dir)

    seed_everything(job.seed)
    device = resolve_device(job.device)
    supernet = Supernet(space, resolution_mode=job.resolution_mode, dropout=job.supernet.dropout,
                        drop_connect=job.supernet.drop_connect)
    if init_state is not None:
        restore_weights(supernet, init_state, init_from)
    splits = build_splits(job.data, image_size=space.base_resolution)
    steps_per_epoch = _steps_per_epoch(recipe, len(splits.train), job.data["source"])
    epochs = recipe.run_epochs
    supernet.to(device).use_channels_last(use_channels_last(job.memory_format))
    search = DSNAS(supernet, recipe, target_mflops, steps_per_epoch * epochs,
                   warmup_steps=round(recipe.warmup_epochs * steps_per_epoch), seed=job.seed,
                   search_steps=steps_per_epoch * recipe.epochs)
    task = _SearchTask(search, job, splits, steps_per_epoch)
    identity = _identity(job, space, target_mflops, device, init_from)
    loop = RunLoop(out_dir, supernet, identity, epochs=epochs, steps_per_epoch=steps_per_epoch,
                   checkpoint_every=recipe.checkpoint_every_steps, log_every=1,
                   metric_fields=["step", "epoch", *(f.name for f in fields(StepRecord))],
                   description=f"dsnas {target_mflops:g} MFLOPs", progress=progress)
    loop.resume(task)
    loop.run(task, on_step)
    search_seconds = loop.wall_seconds
    summary, evaluation_seconds = _finish(job, splits, search, out_dir, device)
    loop.finish({"wall_seconds": round(search_seconds + evaluation_seconds, 3),
                 "search_seconds": round(search_seconds, 3), "evaluation_seconds": round(evaluation_seconds, 3)})
    return summary


def _finish(job: DsnasJob, splits, search: DSNAS, out_dir: Path,
            device: torch.device) -> tuple[dict[str, Any], float]:
    """Derive the argmax child, save the supernet, evaluate the child, write the outputs.

    Returns the summary and the evaluation's wall-clock seconds (kept out of the summary).
    """
    child = search.child()
    cost = count(search.space, child)
    save_checkpoint(out_dir / "supernet.pt", supernet_state(
        search.supernet, method="dsnas", target_mflops=search.target_mflops, child=child.to_dict(),
        architecture=search.distribution.state_dict()))
    evaluation_started = time.perf_counter()
    evaluators = {split: evaluator_for(job, splits, split, device) for split in ("search", "test")}
    results = {split: evaluator.evaluate(search.supernet, child) for split, evaluator in evaluators.items()}
    evaluation_seconds = time.perf_counter() - evaluation_started
    calibration_images = min(job.evaluation.calibration_images, len(splits.calibration))
    decisions = search.distribution.describe()
    search_steps = min(search.step_count, search.search_steps)
    child_steps = search.step_count - search_steps
    summary = {
        "method": "dsnas", "target_mflops": search.target_mflops, "mflops": cost.mflops,
        "params_m": cost.params_m, "top1_search": results["search"].top1, "top1_test": results["test"].top1,
        "images_processed": search.step_count * search.recipe.batch_size,
        "subnet_images_trained": search.step_count * search.recipe.batch_size,
        "evaluation_images": sum(r.images + calibration_images for r in results.values()),
        "steps": search.step_count, "warmup_steps": search.warmup_steps, "search_steps": search_steps,
        "child_steps": child_steps, "child_images": child_steps * search.recipe.batch_size,
        "init": search.recipe.init,
        "child": child.to_dict(),
        "frozen": {label: {"choice": d["frozen_choice"], "step": d["frozen_step"]}
                   for label, d in decisions.items() if d["frozen_choice"] is not None},
        "decisions": decisions,
    }
    write_json(out_dir / "child.json", {**child.to_dict(), "mflops": cost.mflops, "params_m": cost.params_m})
    write_json(out_dir / "summary.json", summary)
    return summary, evaluation_seconds
