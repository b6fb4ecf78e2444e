# Milestone `paper`: the paper table with its figures (target `pareto_table`) and the ablation plots
# (target `ablation_plots`), all made from existing results (regenerating a plot never retrains).
PAPER = f"{R}/paper"
FORMATS = config["report"]["formats"]
FIGURES = ["pareto_fronts", "accuracy_by_flops_bin", "predictor_rank", "training_curves"]
ABLATIONS = ["sampler", "estimator", "k"]


def paper_inputs(wildcards):
    return {
        "chosen": expand(rules.search_pareto.output.chosen, method=METHODS),
        "hypervolume": expand(rules.search_pareto.output.hypervolume, method=METHODS),
        "front": expand(rules.search_pareto.output.front, method=METHODS),
        "training": expand(rules.train_supernet.output.summary, method=METHODS),
        "dsnas": expand(rules.dsnas_search.output.summary, target=DSNAS_TARGETS),
    }


rule paper_table:
    input:
        unpack(paper_inputs),
    output:
        markdown=f"{PAPER}/pareto_table.md",
        csv=f"{PAPER}/pareto_table.csv",
        latex=f"{PAPER}/pareto_table.tex",
        metrics=f"{PAPER}/metrics.json",
    log:
        f"{R}/logs/pareto_table.log",
    params:
        config=CONFIG_FILE,
        results_dir=R,
        what="table",
    threads: 1
    script:
        "../workflow/scripts/report.py"


rule figures:
    input:
        unpack(paper_inputs),
        evaluated=expand(rules.search_pareto.output.evaluated, method=METHODS),
        epochs=expand(rules.train_supernet.output.epochs, method=METHODS),
        predictions=rules.fit_predictor.output.predictions,
        predictor_metrics=rules.fit_predictor.output.metrics,
    output:
        figures=report(
            expand(f"{PAPER}/figures/{{name}}.{{ext}}", name=FIGURES, ext=FORMATS),
            category="Figures",
        ),
        fronts=f"{PAPER}/plots/fronts.csv",
        curves=f"{PAPER}/plots/training_curves.csv",
    log:
        f"{R}/logs/figures.log",
    params:
        config=CONFIG_FILE,
        results_dir=R,
        what="figures",
    threads: 1
    script:
        "../workflow/scripts/report.py"


rule pareto_table:
    input:
        rules.paper_table.output,
        rules.figures.output,


rule ablation_plot:
    input:
        unpack(paper_inputs),
    output:
        report([f"{PAPER}/ablations/{{ablation}}.{ext}" for ext in FORMATS], category="Ablations"),
    log:
        f"{R}/logs/ablation_plot/{{ablation}}.log",
    params:
        config=CONFIG_FILE,
        results_dir=R,
        what=lambda wildcards: f"ablation={wildcards.ablation}",
    wildcard_constraints:
        ablation="|".join(ABLATIONS),
    threads: 1
    script:
        "../workflow/scripts/report.py"


rule ablation_plots:
    input:
        expand(f"{PAPER}/ablations/{{ablation}}.{{ext}}", ablation=ABLATIONS, ext=FORMATS),
