"""Evolutionary Pareto search on a supernet checkpoint (fitness: top-1 on the search split).

Writes evaluated.csv (every evaluated subnet), front.csv (the non-dominated set), chosen/<name>.json and
the exported model chosen/<name>/ per FLOPs target (a0, a1, ... by increasing target), chosen.csv (each
chosen model evaluated once on the test split), hypervolume.json and summary.json.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from attentivenas.cli._stage import add_stage_arguments, start_stage
from attentivenas.errors import UserInputError
from attentivenas.evaluation import EvalResult
from attentivenas.export import export_subnet
from attentivenas.flops import flops_range
from attentivenas.io import atomic_write_bytes, write_csv, write_json
from attentivenas.layout import SearchRunFiles
from attentivenas.predictor import load_predictor
from attentivenas.search import (
    EvolutionarySearch,
    candidate_row,
    choose_at_targets,
    hypervolume,
    pareto_front,
)
from attentivenas.space import Subnet

HELP = "evolutionary Pareto search; chosen models per FLOPs target, exported and tested once"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, stage="search_pareto")
    parser.add_argument("--out-dir", required=True, help="directory for the search results")
    parser.add_argument("--predictor",
                        help="predictor.npz for the pre-filter (config key search.predictor_prefilter)")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    stage = start_stage(args, "search_pareto")
    job, space = stage.job, stage.space
    settings = job.search
    if not settings.targets_mflops:
        low, high = flops_range(space)
        raise UserInputError(f"{args.config}: config key 'search.targets_mflops' is required: the MFLOPs "
                             f"at which to choose models, {low:.3f} to {high:.3f} for space {space.name!r}")
    predictor = None
    if settings.predictor_prefilter:
        if not args.predictor:
            raise UserInputError("config key 'search.predictor_prefilter' is true: give --predictor PATH "
                                 "(predictor.npz from fit-predictor)")
        predictor = load_predictor(args.predictor, space)
    elif args.predictor:
        raise UserInputError("--predictor given but config key 'search.predictor_prefilter' is false; set it "
                             "to true or leave --predictor out")
    supernet = stage.supernet(args.checkpoint)
    search_evaluator = stage.evaluator("search")

    def fitness(subnets: list[Subnet]) -> list[float]:
        return [r.top1 for r in search_evaluator.evaluate_many(supernet, subnets, description="fitness")]

    search = EvolutionarySearch(space, fitness, settings, job.seed, predictor)
    candidates = search.run()
    front = pareto_front(candidates)
    chosen = choose_at_targets(candidates, settings.targets_mflops)

    files = SearchRunFiles(Path(args.out_dir))
    write_csv(files.evaluated, [candidate_row(c) for c in candidates])
    write_csv(files.front, [candidate_row(c) for c in front])
    test_evaluator = stage.evaluator("test")
    tested: dict[Subnet, tuple[Path, EvalResult]] = {}
    rows = []
    for name, target, candidate in chosen:
        write_json(files.chosen_subnet(name),
                   {**candidate.subnet.to_dict(), "mflops": candidate.mflops, "params_m": candidate.params_m,
                    "top1_search": candidate.top1, "target_mflops": target})
        model_dir = files.chosen_model(name)
        if candidate.subnet in tested:
            source = tested[candidate.subnet][0]
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                atomic_write_bytes(model_dir / path.relative_to(source), path.read_bytes())
        else:
            tested[candidate.subnet] = (model_dir, export_subnet(supernet, candidate.subnet, test_evaluator,
                                                                 model_dir))
        result = tested[candidate.subnet][1]
        rows.append({"name": name, "target": target, "subnet": candidate.subnet.to_json(),
                     "mflops": candidate.mflops, "params_m": candidate.params_m,
                     "top1_search": candidate.top1, "top1_test": result.top1})
    write_csv(files.chosen, rows)

    window, floor = space.hypervolume_window, space.hypervolume_top1_floor
    chosen_hv = hypervolume([(r["mflops"], r["top1_test"]) for r in rows], window, floor)
    front_hv = hypervolume([(c.mflops, c.top1) for c in front], window, floor)
    write_json(files.hypervolume, {
        "reference_point": chosen_hv.as_dict()["reference_point"], "window_mflops": list(window),
        "top1_floor": floor, "normalized_by": "window width x (100 - top1_floor)",
        "chosen_test": chosen_hv.as_dict(), "front_search": front_hv.as_dict()})
    write_json(files.summary, {
        "evaluated": len(candidates), "generations": max(c.generation for c in candidates),
        "front_size": len(front), "chosen_distinct": len(tested),
        "predictor_prefilter": predictor is not None,
        "images_processed": search_evaluator.images_processed + test_evaluator.images_processed})
    write_json(files.timings, {
        "wall_seconds": round(time.perf_counter() - start, 3),
        "calibration_seconds": round(search_evaluator.calibration_seconds + test_evaluator.calibration_seconds, 3),
        "measure_seconds": round(search_evaluator.measure_seconds + test_evaluator.measure_seconds, 3)})
    logger.info("%d subnets evaluated, front of %d; hypervolume (normalized) search front %.4f, chosen on "
                "test %.4f -> %s", len(candidates), len(front), front_hv.normalized, chosen_hv.normalized, files.dir)
    for row in rows:
        logger.info("  %s: <= %g MFLOPs: %.3f MFLOPs, top-1 search %.2f%%, test %.2f%%", row["name"], row["target"],
                    row["mflops"], row["top1_search"], row["top1_test"])
    return 0
