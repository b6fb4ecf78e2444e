# Milestone `supernet`: one two-stage training run per configured method (uniform = BigNAS;
# attentive BestUp/WorstUp with the loss or the predictor estimator = AttentiveNAS).


def method_inputs(wildcards):
    needs = method_needs(config, wildcards.method)
    inputs = {"data": rules.prepare_data.output.summary}
    if needs["warmup"]:
        inputs["init"] = rules.warmup_supernet.output.checkpoint
    if needs["predictor"]:
        inputs["predictor"] = rules.fit_predictor.output.predictor
    return inputs


rule train_supernet:
    input:
        unpack(method_inputs),
    output:
        checkpoint=f"{R}/supernet/{{method}}/supernet.pt",
        summary=f"{R}/supernet/{{method}}/summary.json",
        epochs=f"{R}/supernet/{{method}}/epochs.csv",
        metrics=f"{R}/supernet/{{method}}/metrics.csv",
    log:
        f"{R}/logs/train_supernet/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/train_supernet/{{method}}.tsv"
    params:
        config=CONFIG_FILE,
        settings=lambda wildcards: training_settings(config, wildcards.method),
        method=lambda wildcards: config["methods"][wildcards.method],
        sampler=config["sampler"],
        out_dir=lambda wildcards: f"{R}/supernet/{wildcards.method}",
    threads: workflow.cores
    resources:
        mem_mb=TRAIN_MEM_MB,
        gpu=1 if config["device"] == "cuda" else 0,
    script:
        "../workflow/scripts/train_supernet.py"


rule supernet:
    input:
        expand(rules.train_supernet.output.checkpoint, method=METHODS),
