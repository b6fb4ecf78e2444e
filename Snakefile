# AttentiveNAS end to end: data -> warm-up + predictor -> supernet per method -> search -> paper.
#   snakemake --cores all pareto_table                       (default config: config/config.yaml)
#   snakemake --cores all pareto_table --configfile config/tiny.yaml
# The config is validated against attentivenas/config_schema.yaml and typed (attentivenas.specs) before
# any job runs. Paths come from attentivenas.layout; each job's `settings` parameter (attentivenas.stages)
# is all it reads.
import os
import re

from attentivenas.layout import ABLATIONS, DSNAS, FIGURES, ResultsLayout, target_label
from attentivenas.pipeline import (
    data_files,
    method_needs,
    resolve_config,
    space_file,
    stage_code,
)
from attentivenas.stages import PER_SEED, stage_settings_json

# Jobs import the package from this checkout, also in the rules' conda environment (--sdm conda),
# which holds only its dependencies.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])
    )
)
EXPERIMENT = resolve_config(config, workflow.overwrite_configfiles)
LAYOUT = ResultsLayout(EXPERIMENT.results_dir)
METHODS = list(EXPERIMENT.methods)
SEEDS = EXPERIMENT.run_seeds
DSNAS_TARGETS = [target_label(t) for t in EXPERIMENT.dsnas.targets]
FORMATS = EXPERIMENT.report.formats
SPACE_FILE = space_file(EXPERIMENT)
TRAIN_MEM_MB = 4000
# Threads of each training, sampling, search and DSNAS job: Snakemake gives a job at most --cores, and a
# cluster profile sets its own per rule (set-threads).
TRAIN_THREADS = 8


report: "workflow/report/workflow.rst"


wildcard_constraints:
    method="|".join(map(re.escape, METHODS)) or "NO_METHOD",
    target="|".join(map(re.escape, DSNAS_TARGETS)) or "NO_TARGET",
    seed="|".join(map(str, SEEDS)),


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/predictor.smk"
include: "rules/supernet.smk"
include: "rules/search.smk"
include: "rules/dsnas.smk"
include: "rules/paper.smk"


rule all:
    default_target: True
    input:
        rules.pareto_table.input,
        rules.ablation_plots.input,
