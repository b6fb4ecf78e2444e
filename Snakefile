# AttentiveNAS end to end: data -> warm-up + predictor -> supernet per method -> search -> paper.
#   snakemake --cores all pareto_table                       (default config: config/config.yaml)
#   snakemake --cores all pareto_table --configfile config/tiny.yaml
# The config is validated against attentivenas/config_schema.yaml before any job runs.
from attentivenas.config import training_settings
from attentivenas.pipeline import method_needs, resolve_config, target_label

config, CONFIG_FILE = resolve_config(config, workflow.overwrite_configfiles)
R = config["results_dir"]
METHODS = list(config["methods"])
DSNAS_TARGETS = [target_label(t) for t in config["dsnas"]["targets_mflops"]] if config["dsnas"]["enabled"] else []
TRAIN_MEM_MB = 4000


wildcard_constraints:
    method="|".join(METHODS) or "NO_METHOD",
    target="|".join(t.replace(".", r"\.") for t in DSNAS_TARGETS) or "NO_TARGET",


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
