"""Training throughput, uniform (BigNAS) vs attentive BestUp-k (loss), and the sub-batch scoring's rankings.

(a) Throughput: the samplers train the same supernet in alternating blocks of steps, so a busy machine
    slows all alike: uniform, attentive scoring its candidates on the whole minibatch (the old
    behaviour), and attentive scoring on the first `score_images` images, for each size asked. Ratios
    are attentive / uniform images per second, as the ratio of the per-sampler medians over rounds and as
    the median of the per-round ratios (goal >= 0.9).
(b) Ranking agreement: after a uniform warm-up (the default run's 100 steps), attentive BestUp-k training
    goes on and every candidate set is scored on sub-batches of each size, on the whole minibatch and on a
    larger reference set of fixed training images. Per size: the mean Kendall tau against the whole
    minibatch and against the reference, and how often the best (BestUp) and the worst (WorstUp) candidate
    is the one the whole minibatch (or the reference) picks; chance is 1/k.
(c) The attentive sampler's own work (bin draw, marginal draws, rejections, FLOPs look-ups; not the
    candidates' forwards) as a share of the attentive step.

Timings (a, c) want a quiet machine; the rankings (b) do not, so they can run apart:

    python benchmarks/bench_training.py --parts throughput --threads 2 --out benchmarks/bench_training.txt
    python benchmarks/bench_training.py --parts ranking --threads 2 --out benchmarks/bench_training_ranking.txt
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from attentivenas.checkpoint import load_checkpoint, restore_weights
from attentivenas.config import validate_config
from attentivenas.data import build_splits, make_loader
from attentivenas.optim import build_optimizer
from attentivenas.runtime import seed_everything, set_threads, use_channels_last
from attentivenas.samplers import AttentiveSampler, LossEstimator, build_flops_table, build_sampler
from attentivenas.space import SearchSpace, Subnet
from attentivenas.specs import ExperimentSpec, load_experiment
from attentivenas.stages import stage_job
from attentivenas.supernet import Supernet
from attentivenas.training import build_scheduler, sandwich_step, set_bn_momentum

REPO = Path(__file__).resolve().parents[1]
RECIPE_KEYS = ("num_arch_training", "distillation", "middle_loss_weight", "label_smoothing", "lr", "momentum",
               "nesterov", "weight_decay", "grad_clip_value", "bn_momentum")
"""The training keys of `--config` the benchmark trains with: the default pipeline's sandwich step."""


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def size_label(size: int | None) -> str:
    return "whole" if size is None else str(size)


class RankingRecorder:
    """A loss estimator that scores on the whole minibatch, as training does, and records on the side
    the scores of every sub-batch size and of the reference images."""

    name = "loss"

    def __init__(self, supernet: Supernet, label_smoothing: float, sizes: Sequence[int],
                 reference: tuple[torch.Tensor, torch.Tensor], chunk: int):
        self.whole = LossEstimator(supernet, label_smoothing)
        self.parts = {size: LossEstimator(supernet, label_smoothing, size) for size in sizes}
        self.reference, self.chunk = reference, chunk
        self.records: list[dict[str, np.ndarray]] = []
        self.recording = False

    def images_per_candidate(self, images: torch.Tensor | None) -> int:
        return self.whole.images_per_candidate(images)

    def score(self, candidates: Sequence[Subnet], images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        whole = self.whole.score(candidates, images, labels)
        if self.recording:
            record = {size: part.score(candidates, images, labels) for size, part in self.parts.items()}
            ref_images, ref_labels = self.reference
            chunks = [self.whole.score(candidates, ref_images[i: i + self.chunk], ref_labels[i: i + self.chunk])
                      for i in range(0, len(ref_images), self.chunk)]
            record.update({None: whole, "reference": np.mean(chunks, axis=0)})
            self.records.append(record)
        return whole


def ranking_table(records: list[dict], sizes: Sequence[int | None], k: int) -> list[str]:
    """One row per scoring size: tau and pick agreement against the whole minibatch and the reference."""
    lines = [f"{'score_images':>12} {'tau vs whole':>13} {'best = whole':>13} {'worst = whole':>14} "
             f"{'tau vs ref':>11} {'best = ref':>11} {'worst = ref':>12}"]
    for size in sizes:
        row = [size_label(size)]
        for target in (None, "reference"):
            taus = [kendalltau(r[size], r[target]).statistic for r in records]
            best = np.mean([np.argmax(r[size]) == np.argmax(r[target]) for r in records])
            worst = np.mean([np.argmin(r[size]) == np.argmin(r[target]) for r in records])
            row += [f"{np.mean(taus):.3f}", f"{best:.3f}", f"{worst:.3f}"]
        lines.append(f"{row[0]:>12} {row[1]:>13} {row[2]:>13} {row[3]:>14} {row[4]:>11} {row[5]:>11} "
                     f"{row[6]:>12}")
    lines.append(f"{'(chance)':>12} {0:>13.3f} {1 / k:>13.3f} {1 / k:>14.3f} {0:>11.3f} {1 / k:>11.3f} "
                 f"{1 / k:>12.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"),
                        help="the recipe (subnets per step, distillation, loss weights) and memory format")
    parser.add_argument("--space", default="fmnist")
    parser.add_argument("--data", default=str(REPO / "data" / "fashion-mnist" / "fmnist-10k-2k.npz"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6, help="steps per sampler per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--score-images", type=int, nargs="+", default=[32, 16],
                        help="sub-batch sizes timed against whole-minibatch scoring")
    parser.add_argument("--warmup-steps", type=int, default=100, help="uniform steps before ranking agreement")
    parser.add_argument("--tau-steps", type=int, default=100, help="attentive steps recording rankings")
    parser.add_argument("--tau-sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--reference-images", type=int, default=512)
    parser.add_argument("--init-from", default=None, help="a warmed-up supernet checkpoint: skips the warm-up")
    parser.add_argument("--parts", nargs="+", choices=["throughput", "ranking"], default=["throughput", "ranking"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args()
    set_threads(args.threads)
    report = io.StringIO()

    def say(line: str = "") -> None:
        print(line, flush=True)
        report.write(line + "\n")

    recipe = load_experiment(args.config)
    experiment = ExperimentSpec.from_dict(validate_config({
        "seed": 0, "space": args.space, "memory_format": recipe.memory_format,
        "data": {"dataset": "fashion_mnist", "source": args.data},
        "training": {**{key: getattr(recipe.training, key) for key in RECIPE_KEYS},
                     "batch_size": args.batch_size, "epochs": 1, "warmup_epochs": 0},
        "sampler": {key: value for key, value in recipe.sampler.to_dict().items() if key != "score_images"},
        "methods": {"uniform": {"sampler": "uniform"},
                    "bestup": {"sampler": "attentive", "mode": "bestup", "k": args.k, "estimator": "loss"}}}))
    settings = experiment.training
    uniform, bestup = (stage_job(experiment, "train_supernet", run) for run in ("uniform", "bestup"))
    space = SearchSpace.load(args.space)
    splits = build_splits(experiment.data, image_size=space.base_resolution)
    seed_everything(0)
    supernet = Supernet(space).train().use_channels_last(use_channels_last(experiment.memory_format))
    if args.init_from:
        restore_weights(supernet, load_checkpoint(args.init_from, space), args.init_from)
    set_bn_momentum(supernet, settings.bn_momentum)
    optimizer = build_optimizer(supernet, settings)
    total_steps = 2 * (len(args.score_images) + 2) * (args.steps * args.rounds) + args.warmup_steps + args.tau_steps
    scheduler = build_scheduler(optimizer, settings, steps_per_epoch=total_steps)
    started = time.perf_counter()
    table = build_flops_table(bestup, space)
    table_seconds = time.perf_counter() - started

    def attentive(score_images: int | None) -> AttentiveSampler:
        sized = replace(bestup, sampler=replace(bestup.sampler, score_images=score_images))
        return build_sampler(sized, space, supernet=supernet, table=table)

    samplers = {"uniform": build_sampler(uniform, space), "whole": attentive(None)}
    samplers.update({str(size): attentive(size) for size in args.score_images})
    batches = iter(make_loader(splits.train, args.batch_size, shuffle=True, seed=0, drop_last=True))
    epoch = 0

    def next_batch():
        nonlocal batches, epoch
        try:
            return next(batches)
        except StopIteration:
            epoch += 1
            batches = iter(make_loader(splits.train, args.batch_size, shuffle=True, seed=epoch, drop_last=True))
            return next(batches)

    def train(sampler, steps: int) -> float:
        seconds = 0.0
        for _ in range(steps):
            images, labels = next_batch()
            start = time.perf_counter()
            sandwich_step(supernet, supernet, sampler, images, labels, settings, optimizer, scheduler)
            seconds += time.perf_counter() - start
        return seconds

    say(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {cpu_model()}, "
        f"python {platform.python_version()}")
    say(f"space {args.space}, batch {args.batch_size}, {settings.num_arch_training} subnets per step "
        f"({settings.num_arch_training - 2} from the sampler), attentive BestUp-{args.k} with the loss estimator")

    if "throughput" in args.parts:
        throughput(args, samplers, train, table, table_seconds, settings, space, say)
    if "ranking" in args.parts:
        warmup = 0 if args.init_from else args.warmup_steps
        ranking(args, samplers, train, attentive(None), splits, settings, supernet, warmup, say)
    if args.out:
        Path(args.out).write_text(report.getvalue())


def throughput(args, samplers, train, table, table_seconds, settings, space, say) -> None:
    """(a) and (c): images/s of the samplers in alternating rounds, the sampler's own share."""
    for sampler in samplers.values():  # first-call costs (kernels, thread pools, caches)
        train(sampler, 2)
    for sampler in samplers.values():
        if isinstance(sampler, AttentiveSampler):
            sampler.reset_stats()
    seconds = {name: [] for name in samplers}
    for _ in range(args.rounds):
        for name, sampler in samplers.items():
            seconds[name].append(train(sampler, args.steps))
    images_per_round = args.steps * args.batch_size
    rates = {name: [images_per_round / s for s in rounds] for name, rounds in seconds.items()}
    say(f"\n(a) throughput: {args.steps} steps per sampler per round, {args.rounds} alternating rounds")
    say(f"{'sampler':<26} {'images/s':>9} {'ms/step':>8} {'ratio of medians':>17} {'median per-round ratio':>23}"
        f" {'images scored/step':>19}")
    uniform = statistics.median(rates["uniform"])
    for name, sampler in samplers.items():
        rate = statistics.median(rates[name])
        label = "uniform" if name == "uniform" else f"attentive, score on {name}"
        pair = statistics.median(a / u for a, u in zip(rates[name], rates["uniform"], strict=True))
        scored = sampler.stats()["images_scored"] / (args.steps * args.rounds)
        say(f"{label:<26} {rate:>9.1f} {1000 * args.batch_size / rate:>8.1f} {rate / uniform:>17.3f} "
            f"{pair:>23.3f} {scored:>19.0f}")

    # (c) the sampler's own overhead, from the whole-minibatch run's counters
    stats = samplers["whole"].stats()
    whole_seconds = sum(seconds["whole"])
    middle = settings.num_arch_training - 2
    lone = AttentiveSampler(space, random.Random(1), table, estimator=None, k=args.k)
    calls = 2000
    start = time.perf_counter()
    for _ in range(calls):
        lone.draw_candidates()
    draw_seconds = (time.perf_counter() - start) / calls
    say("\n(c) attentive sampler's own work (bin draw, marginal draws, rejection, FLOPs look-ups):")
    say(f"  FLOPs table of {len(table.subnets)} subnets built once in {table_seconds:.2f} s")
    say(f"  in training (whole-minibatch scoring): {100 * stats['overhead_seconds'] / whole_seconds:.3f}% of the "
        f"attentive step, estimator forwards {100 * stats['estimator_seconds'] / whole_seconds:.1f}%; in-bin rate "
        f"{stats['in_bin_rate']:.3f}, {stats['tries_per_candidate']:.2f} tries per candidate")
    for size in args.score_images:
        sub = samplers[str(size)].stats()
        say(f"  estimator forwards when scoring on {size} images: "
            f"{100 * sub['estimator_seconds'] / sum(seconds[str(size)]):.1f}% of the attentive step")
    share = 100 * middle * draw_seconds * len(seconds["whole"]) * args.steps / whole_seconds
    say(f"  alone: {1000 * draw_seconds:.3f} ms per {args.k} candidates, x{middle} per step = {share:.3f}% "
        "of the attentive step (goal <= 2%)")



def ranking(args, samplers, train, ranking_sampler, splits, settings, supernet, warmup_steps, say) -> None:
    """(b): the sub-batch rankings against the whole minibatch's and a reference set's."""
    reference = [splits.train[i] for i in range(len(splits.train) - args.reference_images, len(splits.train))]
    ref_images = torch.stack([image for image, _ in reference])
    ref_labels = torch.tensor([int(label) for _, label in reference])
    recorder = RankingRecorder(supernet, settings.label_smoothing, args.tau_sizes, (ref_images, ref_labels),
                               chunk=args.batch_size)
    ranking_sampler.estimator = recorder
    started = time.perf_counter()
    train(samplers["uniform"], warmup_steps)
    recorder.recording = True
    train(ranking_sampler, args.tau_steps)
    sizes = [*args.tau_sizes, None]
    say(f"\n(b) ranking agreement: {len(recorder.records)} candidate sets of k={args.k} over {args.tau_steps} "
        f"attentive steps after {warmup_steps} uniform warm-up steps"
        f"{' from ' + args.init_from if args.init_from else ''}"
        f"{' and the throughput part' if 'throughput' in args.parts else ''}; reference: the loss on "
        f"{args.reference_images} training images in batches of {args.batch_size}, "
        f"{time.perf_counter() - started:.0f} s")
    for line in ranking_table(recorder.records, sizes, args.k):
        say(line)


if __name__ == "__main__":
    main()
