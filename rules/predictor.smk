# Milestone `predictor`: a briefly trained uniform supernet (the warm-up), subnets sampled from it and
# evaluated on the search split, and the accuracy predictor fitted on them.


rule warmup_supernet:
    input:
        data=rules.prepare_data.output.summary,
    output:
        checkpoint=f"{R}/warmup/supernet.pt",
        summary=f"{R}/warmup/summary.json",
        epochs=f"{R}/warmup/epochs.csv",
        metrics=f"{R}/warmup/metrics.csv",
    log:
        f"{R}/logs/warmup_supernet.log",
    benchmark:
        f"{R}/benchmarks/warmup_supernet.tsv"
    params:
        config=CONFIG_FILE,
        settings=training_settings(config, "warmup"),
        out_dir=f"{R}/warmup",
    threads: workflow.cores
    resources:
        mem_mb=TRAIN_MEM_MB,
        gpu=1 if config["device"] == "cuda" else 0,
    script:
        "../workflow/scripts/train_supernet.py"


rule sample_predictor_subnets:
    input:
        checkpoint=rules.warmup_supernet.output.checkpoint,
    output:
        subnets=f"{R}/predictor/subnets.csv",
    log:
        f"{R}/logs/sample_predictor_subnets.log",
    benchmark:
        f"{R}/benchmarks/sample_predictor_subnets.tsv"
    params:
        config=CONFIG_FILE,
        settings=config["predictor"],
        evaluation=config["evaluation"],
        subnets=config["predictor"]["num_subnets"],
    threads: workflow.cores
    resources:
        mem_mb=TRAIN_MEM_MB,
    script:
        "../workflow/scripts/sample_subnets.py"


rule fit_predictor:
    input:
        subnets=rules.sample_predictor_subnets.output.subnets,
    output:
        predictor=f"{R}/predictor/predictor.pkl",
        metrics=f"{R}/predictor/metrics.json",
        predictions=f"{R}/predictor/predictions.csv",
        plot=f"{R}/predictor/predicted_vs_true.png",
    log:
        f"{R}/logs/fit_predictor.log",
    params:
        config=CONFIG_FILE,
        settings=config["predictor"],
        out_dir=f"{R}/predictor",
    threads: 1
    script:
        "../workflow/scripts/fit_predictor.py"


rule predictor:
    input:
        rules.fit_predictor.output,
