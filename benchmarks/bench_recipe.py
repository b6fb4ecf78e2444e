"""Recipe benchmark: the max and min subnets of a sandwich-trained supernet against the same two
architectures trained alone, on the same data, steps and recipe, over several seeds.

The supernet follows the default pipeline: the uniform warm-up run, then the method's run continuing
from it (fresh optimizer and LR schedule, as `training.init: warmup` does), each with the project's
sandwich step. Each architecture alone goes through the same two phases with the same data order,
optimizer, LR schedule, label smoothing and clipping, training only itself; it gets dropout and
drop-connect exactly when it gets them in the sandwich (the max subnet). Top-1 is measured on the test
split after BN recalibration, by the project's evaluator. The gap is alone minus supernet, in points.

`--budget 4` multiplies every phase's epochs by 4. A recipe variant is a list of config overrides:

    python benchmarks/bench_recipe.py run --variant distill-off --seeds 0 1 2 \\
        --set training.distillation=none
    python benchmarks/bench_recipe.py report

`run` appends one record per seed to benchmarks/results/recipe_runs.jsonl; the alone runs of a seed
are reused from an earlier record whose alone-training settings are identical (distillation and the
number of subnets per step do not change them). `report` writes benchmarks/results/recipe.csv and
recipe.md (the printed table) from all records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml

from attentivenas.config import merge
from attentivenas.data import build_splits, make_loader
from attentivenas.evaluation import evaluator_for
from attentivenas.optim import build_optimizer
from attentivenas.run_loop import EpochOrder, code_version
from attentivenas.runtime import seed_everything, set_threads
from attentivenas.samplers import build_flops_table, build_sampler
from attentivenas.space import SearchSpace, Subnet
from attentivenas.specs import ExperimentSpec, TrainingJob, TrainingSpec, load_experiment
from attentivenas.stages import stage_job, training_stage
from attentivenas.supernet import Supernet
from attentivenas.training import build_scheduler, sandwich_step, set_bn_momentum

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RUNS_FILE = "recipe_runs.jsonl"
SANDWICH_ONLY_KEYS = ("num_arch_training", "middle_loss_weight", "distillation", "distillation_weight",
                      "distillation_ramp_steps")
RUN_ONLY_KEYS = ("checkpoint_every_steps", "log_every_steps", "validate_images", "processes", "init")


def parse_override(text: str) -> dict[str, Any]:
    """`a.b.c=VALUE` (VALUE read as YAML) as the nested dict {a: {b: {c: VALUE}}}."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {text!r}: write KEY=VALUE, e.g. training.distillation=none")
    nested: dict[str, Any] = yaml.safe_load(value)
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def phases(experiment: ExperimentSpec, method: str, budget: int) -> list[TrainingJob]:
    """The warm-up's and the method's training jobs as their pipeline stages resolve them (the method's
    steps from `budget.subnet_images`), epochs scaled by `budget`."""
    result = []
    for run in ("warmup", method):
        job = stage_job(experiment, training_stage(run), run)
        result.append(replace(job, training=replace(job.training, epochs=job.training.epochs * budget)))
    return result


def steps_per_epoch(recipe: TrainingSpec, train_images: int) -> int:
    batches = train_images // recipe.batch_size
    return min(batches, recipe.max_steps_per_epoch or batches)


def train_phases(experiment: ExperimentSpec, supernet: Supernet, splits, plan: list[TrainingJob],
                 step: Callable) -> None:
    """Every phase of `plan` with its own optimizer and schedule, in the training runs' data order."""
    seed = experiment.seed
    for index, job in enumerate(plan):
        if index:
            seed_everything(seed)
        recipe = job.training
        per_epoch = steps_per_epoch(recipe, len(splits.train))
        set_bn_momentum(supernet, recipe.bn_momentum)
        optimizer = build_optimizer(supernet, recipe)
        scheduler = build_scheduler(optimizer, recipe, per_epoch)
        context = {"job": job, "optimizer": optimizer, "scheduler": scheduler}
        done = 0
        supernet.train()
        for epoch in range(recipe.epochs):
            order = EpochOrder(len(splits.train), recipe.batch_size, 1, 0, seed, epoch, 0, per_epoch)
            loader = make_loader(splits.train, recipe.batch_size, shuffle=False, seed=seed + epoch,
                                 drop_last=True, sampler=order)
            for images, labels in loader:
                done += 1
                step(context, images, labels, done)


def sandwich_run(experiment: ExperimentSpec, space: SearchSpace, splits, plan: list[TrainingJob]) -> Supernet:
    seed_everything(experiment.seed)
    supernet = new_supernet(experiment, space)
    samplers = {}

    def step(context, images, labels, done):
        job = context["job"]
        if job.run not in samplers:
            table = build_flops_table(job, space) if job.method.attentive else None
            samplers[job.run] = build_sampler(job, space, supernet=supernet, table=table)
        sandwich_step(supernet, supernet, samplers[job.run], images, labels, job.training,
                      context["optimizer"], context["scheduler"], done)

    train_phases(experiment, supernet, splits, plan, step)
    return supernet


def alone_run(experiment: ExperimentSpec, space: SearchSpace, splits, plan: list[TrainingJob],
              subnet: Subnet) -> Supernet:
    """`subnet` trained by itself: only its weights of a fresh supernet are used or updated."""
    seed_everything(experiment.seed)
    supernet = new_supernet(experiment, space)
    regularize = subnet == space.max_subnet()

    def step(context, images, labels, done):
        recipe, optimizer = context["job"].training, context["optimizer"]
        optimizer.zero_grad(set_to_none=True)
        supernet.set_active_subnet(subnet, regularize=regularize)
        loss = F.cross_entropy(supernet(images), labels, label_smoothing=recipe.label_smoothing)
        loss.backward()
        if recipe.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(supernet.parameters(), recipe.grad_clip_value)
        optimizer.step()
        context["scheduler"].step()

    train_phases(experiment, supernet, splits, plan, step)
    return supernet


def new_supernet(experiment: ExperimentSpec, space: SearchSpace) -> Supernet:
    return Supernet(space, experiment.resolution_mode, dropout=experiment.supernet.dropout,
                    drop_connect=experiment.supernet.drop_connect)


def alone_key(experiment: ExperimentSpec, plan: list[TrainingJob]) -> str:
    """Everything an alone run depends on, the package's code included: equal keys give bit-identical
    alone runs."""
    alone_plan = [(job.run, {k: v for k, v in job.training.to_dict().items()
                             if k not in SANDWICH_ONLY_KEYS + RUN_ONLY_KEYS}) for job in plan]
    identity = {"plan": alone_plan, "seed": experiment.seed, "space": experiment.space, "data": experiment.data,
                "supernet": experiment.supernet.to_dict(), "resolution_mode": experiment.resolution_mode,
                "evaluation": experiment.evaluation.to_dict(), "code": code_version()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_seed(base: ExperimentSpec, args, seed: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    experiment = replace(base, seed=seed)
    space = SearchSpace.load(experiment.space)
    splits = build_splits(experiment.data, image_size=space.base_resolution, root=REPO)
    plan = phases(experiment, args.method, args.budget)
    evaluator = evaluator_for(experiment, splits, "test", torch.device("cpu"))
    record: dict[str, Any] = {"variant": args.variant, "budget": args.budget, "seed": seed,
                              "method": args.method, "overrides": args.set,
                              "steps": sum(job.training.epochs * steps_per_epoch(job.training, len(splits.train))
                                           for job in plan),
                              "test_images": len(splits.test),
                              "torch": torch.__version__, "threads": torch.get_num_threads()}
    started = time.perf_counter()
    supernet = sandwich_run(experiment, space, splits, plan)
    record["supernet"] = {"max": evaluator.evaluate(supernet, space.max_subnet()).top1,
                          "min": evaluator.evaluate(supernet, space.min_subnet()).top1,
                          "seconds": round(time.perf_counter() - started, 1)}
    key = alone_key(experiment, plan)
    record["alone_key"] = key
    earlier = next((r for r in records if r.get("alone_key") == key and "alone" in r), None)
    if earlier is not None:
        record["alone"] = {**earlier["alone"], "reused_from": earlier["variant"]}
    else:
        started = time.perf_counter()
        alone = {}
        for role, subnet in (("max", space.max_subnet()), ("min", space.min_subnet())):
            alone[role] = evaluator.evaluate(alone_run(experiment, space, splits, plan, subnet), subnet).top1
        record["alone"] = {**alone, "seconds": round(time.perf_counter() - started, 1)}
    return record


def command_of(variant: str, budget: int, seeds: list[int], overrides: list[str], method: str,
               config: str) -> str:
    parts = ["python benchmarks/bench_recipe.py run", f"--variant {variant}"]
    if budget != 1:
        parts.append(f"--budget {budget}")
    if method != "bignas":
        parts.append(f"--method {method}")
    if config != "config/config.yaml":
        parts.append(f"--config {config}")
    parts.append("--seeds " + " ".join(str(s) for s in seeds))
    parts += [f"--set {o}" for o in overrides]
    return " ".join(parts)


def summarize(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def report(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """One row per variant, budget and step count: records of another step count (an earlier default
    config) stay a row of their own instead of mixing into the current one."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["variant"], record["budget"], record["steps"]), []).append(record)
    rows = []
    for (variant, budget, _), group in groups.items():
        group = sorted({r["seed"]: r for r in group}.values(), key=lambda r: r["seed"])
        gap_max = summarize([r["alone"]["max"] - r["supernet"]["max"] for r in group])
        gap_min = summarize([r["alone"]["min"] - r["supernet"]["min"] for r in group])
        first = group[0]
        rows.append({
            "variant": variant, "budget": budget, "steps": first["steps"], "seeds": len(group),
            "supernet_max": round(statistics.fmean(r["supernet"]["max"] for r in group), 2),
            "alone_max": round(statistics.fmean(r["alone"]["max"] for r in group), 2),
            "supernet_min": round(statistics.fmean(r["supernet"]["min"] for r in group), 2),
            "alone_min": round(statistics.fmean(r["alone"]["min"] for r in group), 2),
            **{f"gap_max_{k}": round(v, 2) for k, v in gap_max.items()},
            **{f"gap_min_{k}": round(v, 2) for k, v in gap_min.items()},
            "torch": first["torch"], "threads": first["threads"],
            "command": command_of(variant, budget, [r["seed"] for r in group], first["overrides"],
                                  first["method"], first.get("config", "config/config.yaml"))})
    rows.sort(key=lambda r: (r["budget"], r["steps"], r["variant"]))
    lines = ["| variant | budget (steps) | seeds | max: supernet / alone | gap max mean ± std [min, max] "
             "| min: supernet / alone | gap min mean ± std [min, max] | command |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['budget']}x ({r['steps']}) | {r['seeds']} "
            f"| {r['supernet_max']:.1f} / {r['alone_max']:.1f} "
            f"| {r['gap_max_mean']:+.1f} ± {r['gap_max_std']:.1f} [{r['gap_max_min']:+.1f}, {r['gap_max_max']:+.1f}] "
            f"| {r['supernet_min']:.1f} / {r['alone_min']:.1f} "
            f"| {r['gap_min_mean']:+.1f} ± {r['gap_min_std']:.1f} [{r['gap_min_min']:+.1f}, {r['gap_min_max']:+.1f}] "
            f"| `{r['command']}` |")
    versions = sorted({(r["torch"], r["threads"]) for r in rows})
    images = sorted({r["test_images"] for r in records})
    header = (f"Gaps are alone minus supernet, test top-1 in points ({'/'.join(map(str, images))} test images, "
              "BN recalibrated), "
              "mean ± sample std over seeds [min, max]; torch and threads: "
              + ", ".join(f"torch {t}, {n} thread(s)" for t, n in versions) + ".")
    return rows, header + "\n\n" + "\n".join(lines) + "\n"


def write_report(records: list[dict[str, Any]], out_dir: Path) -> str:
    rows, table = report(records)
    fields = list(rows[0]) if rows else []
    with (out_dir / "recipe.csv").open("w") as handle:
        handle.write(",".join(fields) + "\n")
        for row in rows:
            handle.write(",".join(json.dumps(row[f]) if isinstance(row[f], str) else str(row[f])
                                  for f in fields) + "\n")
    (out_dir / "recipe.md").write_text(table)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one recipe variant for the given seeds and append the records")
    run.add_argument("--variant", required=True, help="the row's name in the table")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--budget", type=int, default=1, help="multiplier of every phase's epochs")
    run.add_argument("--method", default="bignas", help="the method run after the warm-up")
    run.add_argument("--config", default="config/config.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="config override, e.g. training.label_smoothing=0 (repeatable)")
    run.add_argument("--threads", type=int, default=1)
    summary = sub.add_parser("report", help="aggregate every record into recipe.csv and recipe.md, print the table")
    for command in (run, summary):
        command.add_argument("--out-dir", type=Path, default=RESULTS, help="where the records and tables live")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs_file = args.out_dir / RUNS_FILE

    if args.command == "run":
        set_threads(args.threads)
        overrides: dict[str, Any] = {}
        for text in args.set:
            overrides = merge(overrides, parse_override(text))
        base = load_experiment(REPO / args.config, overrides)
        records = read_records(runs_file)
        clash = [r for r in records if r["variant"] == args.variant and
                 (r["overrides"] != args.set or r.get("config", "config/config.yaml") != args.config)]
        if clash:
            raise SystemExit(f"variant {args.variant!r} was recorded with other overrides {clash[0]['overrides']}; "
                             "choose another --variant name")
        for seed in args.seeds:
            record = run_seed(base, args, seed, read_records(runs_file))
            record["config"] = args.config
            with runs_file.open("a") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
            gap_max = record["alone"]["max"] - record["supernet"]["max"]
            gap_min = record["alone"]["min"] - record["supernet"]["min"]
            print(f"{args.variant} budget {args.budget} seed {seed}: max {record['supernet']['max']:.2f} vs alone "
                  f"{record['alone']['max']:.2f} (gap {gap_max:+.2f}); min {record['supernet']['min']:.2f} vs "
                  f"alone {record['alone']['min']:.2f} (gap {gap_min:+.2f})", flush=True)
    print(write_report(read_records(runs_file), args.out_dir))


if __name__ == "__main__":
    main()
