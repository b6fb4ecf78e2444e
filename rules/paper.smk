# Milestone `paper`: the paper table with its figures (target `pareto_table`) and the ablation plots
# (target `ablation_plots`), all made from existing results (regenerating a plot never retrains).
PAPER = LAYOUT.paper


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


rule paper_table:
    input:
        unpack(paper_inputs),
        code=stage_code("paper_table"),
        space=SPACE_FILE,
    output:
        markdown=str(PAPER.table_markdown),
        csv=str(PAPER.table_csv),
        latex=str(PAPER.table_latex),
        metrics=str(PAPER.metrics),
    log:
        str(LAYOUT.log("paper_table")),
    params:
        settings=settings("paper_table"),
        results_dir=str(LAYOUT.root),
        what="table",
    threads: 1
    script:
        "../workflow/scripts/report.py"


rule figures:
    input:
        unpack(paper_inputs),
        code=stage_code("figures"),
        space=SPACE_FILE,
        evaluated=expand(rules.search_pareto.output.evaluated, method=METHODS),
        epochs=expand(rules.train_supernet.output.epochs, method=METHODS),
        predictions=rules.fit_predictor.output.predictions,
        predictor_metrics=rules.fit_predictor.output.metrics,
    output:
        figures=report(
            [str(PAPER.figure(name, ext)) for name in FIGURES for ext in FORMATS],
            category="Figures",
        ),
        fronts=str(PAPER.fronts_data),
        curves=str(PAPER.training_curves_data),
    log:
        str(LAYOUT.log("figures")),
    params:
        settings=settings("figures"),
        results_dir=str(LAYOUT.root),
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
        code=stage_code("ablation_plot"),
        space=SPACE_FILE,
    output:
        report([str(PAPER.ablation("{ablation}", ext)) for ext in FORMATS], category="Ablations"),
    log:
        str(LAYOUT.log("ablation_plot", "{ablation}")),
    params:
        settings=settings("ablation_plot"),
        results_dir=str(LAYOUT.root),
        what=lambda wildcards: f"ablation={wildcards.ablation}",
    wildcard_constraints:
        ablation="|".join(ABLATIONS),
    threads: 1
    script:
        "../workflow/scripts/report.py"


rule ablation_plots:
    input:
        [str(PAPER.ablation(name, ext)) for name in ABLATIONS for ext in FORMATS],
