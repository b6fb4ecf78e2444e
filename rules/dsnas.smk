# Milestone `dsnas`: the one-stage baseline, one search-and-train run per FLOPs target.


def dsnas_inputs(wildcards):
    inputs = {"data": rules.prepare_data.output.summary}
    if config["dsnas"]["init"] == "warmup":
        inputs["init"] = rules.warmup_supernet.output.checkpoint
    return inputs


rule dsnas_search:
    input:
        unpack(dsnas_inputs),
    output:
        child=f"{R}/dsnas/{{target}}/child.json",
        summary=f"{R}/dsnas/{{target}}/summary.json",
        metrics=f"{R}/dsnas/{{target}}/metrics.csv",
        checkpoint=f"{R}/dsnas/{{target}}/supernet.pt",
    log:
        f"{R}/logs/dsnas_search/{{target}}.log",
    benchmark:
        f"{R}/benchmarks/dsnas_search/{{target}}.tsv"
    params:
        config=CONFIG_FILE,
        settings=config["dsnas"],
        out_dir=lambda wildcards: f"{R}/dsnas/{wildcards.target}",
    threads: workflow.cores
    resources:
        mem_mb=TRAIN_MEM_MB,
        gpu=1 if config["device"] == "cuda" else 0,
    script:
        "../workflow/scripts/dsnas_search.py"


rule dsnas:
    input:
        expand(rules.dsnas_search.output.summary, target=DSNAS_TARGETS),
