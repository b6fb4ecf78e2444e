# Milestone `search`: evolutionary Pareto search in each method's supernet (fitness on the search
# split), the chosen A0..A6-style models evaluated once on test. The search's first generation is
# uniform subnets drawn with the same seed for every method: the per-FLOPs-bin accuracy plots use it.


def search_inputs(wildcards):
    inputs = {"checkpoint": rules.train_supernet.output.checkpoint.format(method=wildcards.method)}
    if config["search"]["predictor_prefilter"]:
        inputs["predictor"] = rules.fit_predictor.output.predictor
    return inputs


rule search_pareto:
    input:
        unpack(search_inputs),
    output:
        evaluated=f"{R}/search/{{method}}/evaluated.csv",
        front=f"{R}/search/{{method}}/front.csv",
        chosen=f"{R}/search/{{method}}/chosen.csv",
        hypervolume=f"{R}/search/{{method}}/hypervolume.json",
    log:
        f"{R}/logs/search_pareto/{{method}}.log",
    benchmark:
        f"{R}/benchmarks/search_pareto/{{method}}.tsv"
    params:
        config=CONFIG_FILE,
        settings=config["search"],
        evaluation=config["evaluation"],
        out_dir=lambda wildcards: f"{R}/search/{wildcards.method}",
    threads: workflow.cores
    resources:
        mem_mb=TRAIN_MEM_MB,
    script:
        "../workflow/scripts/search_pareto.py"


rule search:
    input:
        expand(rules.search_pareto.output.chosen, method=METHODS),
