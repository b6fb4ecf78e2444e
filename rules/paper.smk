# Milestone `paper`: the paper table with its figures (target `pareto_table`) and the ablation plots
# (target `ablation_plots`), all made from existing results (regenerating a plot never retrains).
PAPER = LAYOUT.paper


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
        statistics=str(PAPER.statistics),
    log:
        str(LAYOUT.log("paper_table")),
    conda:
        "../environment.yml"
    threads: 1
    params:
        settings=settings("paper_table"),
        results_dir=results_root,
        what="table",
    script:
        "../workflow/scripts/report.py"


rule figures:
    input:
        unpack(paper_inputs),
        code=stage_code("figures"),
        space=SPACE_FILE,
        evaluated=per_seed(rules.search_pareto.output.evaluated, method=METHODS),
        warmup_metrics=rules.warmup_supernet.output.metrics,
        metrics=per_seed(rules.train_supernet.output.metrics, method=METHODS),
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
    conda:
        "../environment.yml"
    threads: 1
    params:
        settings=settings("figures"),
        results_dir=results_root,
        what="figures",
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
        report(
            [str(PAPER.ablation("{ablation}", ext)) for ext in FORMATS],
            category="Ablations",
        ),
    log:
        str(LAYOUT.log("ablation_plot", "{ablation}")),
    wildcard_constraints:
        ablation="|".join(ABLATIONS),
    conda:
        "../environment.yml"
    threads: 1
    params:
        settings=settings("ablation_plot"),
        results_dir=results_root,
        what=lambda wildcards: f"ablation={wildcards.ablation}",
    script:
        "../workflow/scripts/report.py"


rule ablation_plots:
    input:
        [str(PAPER.ablation(name, ext)) for name in ABLATIONS for ext in FORMATS],
