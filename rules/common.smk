# Functions the rules share: each job's settings, its run folder and its inputs that depend on the
# config. (Rules live in the milestone files; Snakemake's linter wants functions apart from rules.)


def settings(stage):
    """A rule's `settings` parameter: its stage's settings, per method where the rule has one."""
    if stage == "train_supernet":
        return lambda wildcards: stage_settings_json(config, stage, wildcards.method)
    return stage_settings_json(config, stage)


def run_dir(wildcards, output):
    """The folder a stage's command writes into: its outputs' folder (attentivenas.layout names it)."""
    return os.path.dirname(output[0])


def results_root(wildcards, input):
    """The results folder, found from where the job's inputs are (so it follows any storage prefix)."""
    return str(LAYOUT.root_of(input.warmup, LAYOUT.warmup.summary))


def method_inputs(wildcards):
    needs = method_needs(config, wildcards.method)
    inputs = {"data": rules.prepare_data.output.summary}
    if needs["warmup"]:
        inputs["init"] = rules.warmup_supernet.output.checkpoint
    if needs["predictor"]:
        inputs["predictor"] = rules.fit_predictor.output.predictor
    return inputs


def search_inputs(wildcards):
    inputs = {
        "checkpoint": rules.train_supernet.output.checkpoint.format(
            method=wildcards.method
        )
    }
    if config["search"]["predictor_prefilter"]:
        inputs["predictor"] = rules.fit_predictor.output.predictor
    return inputs


def dsnas_inputs(wildcards):
    inputs = {"data": rules.prepare_data.output.summary}
    if config["dsnas"]["init"] == "warmup":
        inputs["init"] = rules.warmup_supernet.output.checkpoint
    return inputs


def paper_inputs(wildcards):
    return {
        "chosen": expand(rules.search_pareto.output.chosen, method=METHODS),
        "hypervolume": expand(rules.search_pareto.output.hypervolume, method=METHODS),
        "front": expand(rules.search_pareto.output.front, method=METHODS),
        "search": expand(rules.search_pareto.output.summary, method=METHODS),
        "training": expand(rules.train_supernet.output.summary, method=METHODS),
        "warmup": rules.warmup_supernet.output.summary,
        "dsnas": expand(rules.dsnas_search.output.summary, target=DSNAS_TARGETS),
    }
