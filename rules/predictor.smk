# Milestone `predictor`: a briefly trained uniform supernet (the warm-up), subnets sampled from it and
# evaluated on the search split, and the accuracy predictor fitted on them.


rule warmup_supernet:
    input:
        code=stage_code("warmup_supernet"),
        space=SPACE_FILE,
        data=rules.prepare_data.output.summary,
    output:
        checkpoint=str(LAYOUT.warmup.checkpoint),
        summary=str(LAYOUT.warmup.summary),
        epochs=str(LAYOUT.warmup.epochs),
        metrics=str(LAYOUT.warmup.metrics),
    log:
        str(LAYOUT.log("warmup_supernet")),
    benchmark:
        str(LAYOUT.benchmark("warmup_supernet"))
    conda:
        "../environment.yml"
    threads: TRAIN_THREADS
    resources:
        mem_mb=TRAIN_MEM_MB,
        gpu=1 if EXPERIMENT.device == "cuda" else 0,
    params:
        settings=settings("warmup_supernet"),
        out_dir=run_dir,
    script:
        "../workflow/scripts/train_supernet.py"


rule sample_predictor_subnets:
    input:
        code=stage_code("sample_predictor_subnets"),
        space=SPACE_FILE,
        checkpoint=rules.warmup_supernet.output.checkpoint,
    output:
        subnets=str(LAYOUT.predictor.subnets),
    log:
        str(LAYOUT.log("sample_predictor_subnets")),
    benchmark:
        str(LAYOUT.benchmark("sample_predictor_subnets"))
    conda:
        "../environment.yml"
    threads: TRAIN_THREADS
    resources:
        mem_mb=TRAIN_MEM_MB,
    params:
        settings=settings("sample_predictor_subnets"),
    script:
        "../workflow/scripts/sample_subnets.py"


rule fit_predictor:
    input:
        code=stage_code("fit_predictor"),
        space=SPACE_FILE,
        subnets=rules.sample_predictor_subnets.output.subnets,
    output:
        predictor=str(LAYOUT.predictor.predictor),
        metrics=str(LAYOUT.predictor.metrics),
        predictions=str(LAYOUT.predictor.predictions),
        plot=str(LAYOUT.predictor.plot),
    log:
        str(LAYOUT.log("fit_predictor")),
    conda:
        "../environment.yml"
    threads: 1
    params:
        settings=settings("fit_predictor"),
        out_dir=run_dir,
    script:
        "../workflow/scripts/fit_predictor.py"


rule predictor:
    input:
        rules.fit_predictor.output,
