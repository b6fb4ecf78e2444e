# Milestone `dsnas`: the one-stage baseline, one search-and-train run per FLOPs target and seed.
DSNAS_RUN = LAYOUT.dsnas("{target}", "{seed}")


rule dsnas_search:
    input:
        unpack(dsnas_inputs),
        code=stage_code("dsnas_search"),
        space=SPACE_FILE,
    output:
        child=str(DSNAS_RUN.child),
        summary=str(DSNAS_RUN.summary),
        metrics=str(DSNAS_RUN.metrics),
        checkpoint=str(DSNAS_RUN.checkpoint),
    log:
        str(LAYOUT.log("dsnas_search", "{target}", "{seed}")),
    benchmark:
        str(LAYOUT.benchmark("dsnas_search", "{target}", "{seed}"))
    conda:
        "../environment.yml"
    threads: TRAIN_THREADS
    resources:
        mem_mb=TRAIN_MEM_MB,
        gpu=1 if EXPERIMENT.device == "cuda" else 0,
    params:
        settings=settings("dsnas_search"),
        out_dir=run_dir,
    script:
        "../workflow/scripts/dsnas_search.py"


rule dsnas:
    input:
        per_seed(rules.dsnas_search.output.summary, target=DSNAS_TARGETS),
