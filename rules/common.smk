# Functions the rules share: each job's settings, its run folder and its inputs that depend on the
# config. (Rules live in the milestone files; Snakemake's linter wants functions apart from rules.)


def settings(stage):
    """A rule's `settings` parameter: its stage's settings, per method and seed where the rule has them."""
    if stage == "train_supernet":
        return lambda wildcards: stage_settings_json(
            EXPERIMENT, stage, wildcards.method, int(wildcards.seed)
        )
    if stage in PER_SEED:
        return lambda wildcards: stage_settings_json(
            EXPERIMENT, stage, seed=int(wildcards.seed)
        )
    return stage_settings_json(EXPERIMENT, stage)


def run_dir(wildcards, output):
    """The folder a stage's command writes into: its outputs' folder (attentivenas.layout names it)."""
    return os.path.dirname(output[0])


def results_root(wildcards, input):
    """The results folder, found from where the job's inputs are (so it follows any storage prefix)."""
    return str(LAYOUT.root_of(input.warmup, LAYOUT.warmup.summary))


def method_inputs(wildcards):
    needs = method_needs(EXPERIMENT, wildcards.method)
    inputs = {"data": rules.prepare_data.output.summary}
    if needs["warmup"]:
        inputs["init"] = rules.warmup_supernet.output.checkpoint
    if needs["predictor"]:
        inputs["predictor"] = rules.fit_predictor.output.predictor
    return inputs


def search_inputs(wildcards):
    inputs = {
        "checkpoint": rules.train_supernet.output.checkpoint.format(
            method=wildcards.method, seed=wildcards.seed
        )
    }
    if EXPERIMENT.search.predictor_prefilter:
        inputs["predictor"] = rules.fit_predictor.output.predictor
    return inputs


def dsnas_inputs(wildcards):
    inputs = {"data": rules.prepare_data.output.summary}
    if EXPERIMENT.dsnas.from_warmup:
        inputs["init"] = rules.warmup_supernet.output.checkpoint
    return inputs


def per_seed(pattern, **wildcards):
    """A per-seed rule's output for every seed (and every value of the other wildcards given)."""
    return expand(pattern, seed=SEEDS, **wildcards)


def paper_inputs(wildcards):
    """The report's inputs, by path (not by rule): workflow/paper_only.smk loads the report rules alone."""
    search = [LAYOUT.search(m, s) for s in SEEDS for m in METHODS]
    return {
        "chosen": [str(r.chosen) for r in search],
        "hypervolume": [str(r.hypervolume) for r in search],
        "front": [str(r.front) for r in search],
        "search": [str(r.summary) for r in search],
        "training": [
            str(LAYOUT.supernet(m, s).summary) for s in SEEDS for m in METHODS
        ],
        "warmup": str(LAYOUT.warmup.summary),
        "data": str(LAYOUT.data_summary),
        "dsnas": [
            str(LAYOUT.dsnas(t, s).summary) for s in SEEDS for t in DSNAS_TARGETS
        ],
    }
