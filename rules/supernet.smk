# Milestone `supernet`: one two-stage training run per configured method and seed (uniform = BigNAS;
# attentive BestUp/WorstUp with the loss or the predictor estimator = AttentiveNAS).
TRAINING_RUN = LAYOUT.supernet("{method}", "{seed}")


rule train_supernet:
    input:
        unpack(method_inputs),
        code=stage_code("train_supernet"),
        space=SPACE_FILE,
    output:
        checkpoint=str(TRAINING_RUN.checkpoint),
        summary=str(TRAINING_RUN.summary),
        epochs=str(TRAINING_RUN.epochs),
        metrics=str(TRAINING_RUN.metrics),
    log:
        str(LAYOUT.log("train_supernet", "{method}", "{seed}")),
    benchmark:
        str(LAYOUT.benchmark("train_supernet", "{method}", "{seed}"))
    conda:
        "../environment.yml"
    threads: TRAIN_THREADS
    resources:
        mem_mb=TRAIN_MEM_MB,
        gpu=1 if EXPERIMENT.device == "cuda" else 0,
    params:
        settings=settings("train_supernet"),
        out_dir=run_dir,
    script:
        "../workflow/scripts/train_supernet.py"


rule supernet:
    input:
        per_seed(rules.train_supernet.output.checkpoint, method=METHODS),
