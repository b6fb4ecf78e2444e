# The paper alone from a finished run's results: the table, figures and ablation plots redrawn from the
# committed CSV/JSON files, e.g. on a fresh clone without checkpoints. Only the report rules are loaded,
# so no training or search can be planned, whatever is missing upstream:
#   snakemake --snakefile workflow/paper_only.smk --cores 1 --forceall
# The DVC stage `paper` runs this (`dvc repro --single-item paper`).


module pipeline:
    snakefile:
        "../Snakefile"
    config:
        config


use rule paper_table from pipeline


use rule figures from pipeline


use rule ablation_plot from pipeline


use rule pareto_table from pipeline


use rule ablation_plots from pipeline


rule paper:
    default_target: True
    input:
        rules.pareto_table.input,
        rules.ablation_plots.input,
