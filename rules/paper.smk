# Milestone `paper`: the paper table with its figures (target `pareto_table`) and the ablation plots
# (target `ablation_plots`), all made from existing results. workflow/paper_only.smk loads these rules
# alone, so it redraws the paper from committed results without checkpoints and never retrains.
PAPER = LAYOUT.paper
REPORT_ROWS = METHODS + ([DSNAS] if DSNAS_TARGETS else [])
# The format `snakemake --report` shows of each figure.
SHOWN_FORMAT = "png" if "png" in FORMATS else FORMATS[0]


rule paper_table:
    input:
        unpack(paper_inputs),
        code=stage_code("paper_table"),
        space=SPACE_FILE,
    output:
        markdown=str(PAPER.table_markdown),
        csv=report(
            str(PAPER.table_csv),
            caption="../workflow/report/pareto_table.rst",
            category="Paper table",
        ),
        latex=str(PAPER.table_latex),
        metrics=[str(PAPER.metrics(row)) for row in REPORT_ROWS],
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
        evaluated=[str(LAYOUT.search(m, s).evaluated) for s in SEEDS for m in METHODS],
        warmup_metrics=str(LAYOUT.warmup.metrics),
        metrics=[str(LAYOUT.supernet(m, s).metrics) for s in SEEDS for m in METHODS],
        predictions=str(LAYOUT.predictor.predictions),
        predictor_metrics=str(LAYOUT.predictor.metrics),
    output:
        figures=[
            (
                report(
                    str(PAPER.figure(name, ext)),
                    caption=f"../workflow/report/{name}.rst",
                    category="Figures",
                    labels={"figure": name.replace("_", " ")},
                )
                if ext == SHOWN_FORMAT
                else str(PAPER.figure(name, ext))
            )
            for name in FIGURES
            for ext in FORMATS
        ],
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
        [
            (
                report(
                    str(PAPER.ablation("{ablation}", ext)),
                    caption="../workflow/report/ablation.rst",
                    category="Ablations",
                    labels={"ablation": "{ablation}"},
                )
                if ext == SHOWN_FORMAT
                else str(PAPER.ablation("{ablation}", ext))
            )
            for ext in FORMATS
        ],
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
