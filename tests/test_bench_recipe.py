import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from attentivenas.budget import method_steps_per_epoch
from attentivenas.specs import load_experiment

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("bench_recipe", REPO / "benchmarks" / "bench_recipe.py")
bench_recipe = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench_recipe)


def _record(variant, seed, supernet, alone, budget=1):
    return {"variant": variant, "budget": budget, "seed": seed, "method": "bignas", "overrides": ["a.b=1"],
            "steps": 130, "test_images": 2000, "torch": "2.x", "threads": 1, "config": "config/config.yaml",
            "supernet": {"max": supernet[0], "min": supernet[1]}, "alone": {"max": alone[0], "min": alone[1]}}


def test_overrides_nest_and_read_values_as_yaml():
    assert bench_recipe.parse_override("training.distillation_weight=0.5") == \
        {"training": {"distillation_weight": 0.5}}
    assert bench_recipe.parse_override("training.grad_clip_value=null") == {"training": {"grad_clip_value": None}}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench_recipe.parse_override("training.lr")


def test_report_gives_mean_std_and_range_of_alone_minus_supernet_per_variant_and_budget():
    records = [_record("v", 0, (70, 60), (75, 66)), _record("v", 1, (72, 64), (75, 66)),
               _record("v", 2, (74, 62), (76, 66)), _record("v", 0, (80, 78), (81, 78), budget=4)]
    rows, table = bench_recipe.report(records)
    short = next(r for r in rows if r["budget"] == 1)
    assert short["seeds"] == 3
    assert (short["gap_max_mean"], short["gap_max_std"], short["gap_max_min"], short["gap_max_max"]) == \
        (pytest.approx(10 / 3, abs=0.01), 1.53, 2, 5)
    assert (short["gap_min_mean"], short["gap_min_std"]) == (4.0, 2.0)
    assert short["command"] == "python benchmarks/bench_recipe.py run --variant v --seeds 0 1 2 --set a.b=1"
    assert "--budget 4" in next(r for r in rows if r["budget"] == 4)["command"]
    assert "+3.3 ± 1.5 [+2.0, +5.0]" in table and "torch 2.x, 1 thread(s)" in table


def test_a_run_trains_both_sides_and_reuses_alone_runs_across_distillation_variants(tmp_path):
    small = ["--config", "config/tiny.yaml", "--seeds", "0", "--out-dir", str(tmp_path),
             "--set", "training.max_steps_per_epoch=1", "--set", "warmup.max_steps_per_epoch=1",
             "--set", "budget.subnet_images=null"]  # the configured steps, not the budget's

    def run(variant, *extra):
        subprocess.run([sys.executable, "benchmarks/bench_recipe.py", "run", "--variant", variant, *small, *extra],
                       cwd=REPO, check=True, capture_output=True)

    run("kl", "--set", "training.distillation=kl")
    run("labels", "--set", "training.distillation=none")
    records = [json.loads(line) for line in (tmp_path / "recipe_runs.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in records] == ["kl", "labels"]
    assert records[0]["steps"] == 2 and records[1]["alone"]["reused_from"] == "kl"
    assert records[0]["supernet"] != records[1]["supernet"]
    table = (tmp_path / "recipe.md").read_text()
    assert "--set training.distillation=none" in table and (tmp_path / "recipe.csv").is_file()


def test_committed_table_and_docs_follow_from_the_committed_records(tmp_path):
    committed = REPO / "benchmarks" / "results"
    records = bench_recipe.read_records(committed / bench_recipe.RUNS_FILE)
    assert bench_recipe.write_report(records, tmp_path) == (committed / "recipe.md").read_text()
    assert (tmp_path / "recipe.csv").read_text() == (committed / "recipe.csv").read_text()
    docs = (REPO / "docs" / "recipe.md").read_text()
    rows = [line for line in (committed / "recipe.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) > 2 and all(row in docs for row in rows)


def test_phases_take_the_method_steps_from_the_budget_as_the_pipeline_does():
    config = load_experiment(REPO / "config" / "config.yaml")
    warmup, method = bench_recipe.phases(config, "bignas", 1)
    assert (warmup.run, method.run) == ("warmup", "bignas")
    assert method.training.max_steps_per_epoch == method_steps_per_epoch(config, "bignas") is not None
    assert bench_recipe.phases(config, "bignas", 4)[1].training.epochs == 4 * method.training.epochs
