# Milestone `search`: evolutionary Pareto search in each method's supernet of each seed (fitness on the search
# split), the chosen A0..A6-style models evaluated once on test. The search's first generation is
# uniform subnets drawn with the same seed for every method: the per-FLOPs-bin accuracy plots use it.
SEARCH_RUN = LAYOUT.search("{method}", "{seed}")


rule search_pareto:
    input:
        unpack(search_inputs),
        code=stage_code("search_pareto"),
        space=SPACE_FILE,
    output:
        evaluated=str(SEARCH_RUN.evaluated),
        front=str(SEARCH_RUN.front),
        chosen=str(SEARCH_RUN.chosen),
        hypervolume=str(SEARCH_RUN.hypervolume),
        summary=str(SEARCH_RUN.summary),
    log:
        str(LAYOUT.log("search_pareto", "{method}", "{seed}")),
    benchmark:
        str(LAYOUT.benchmark("search_pareto", "{method}", "{seed}"))
    conda:
        "../environment.yml"
    threads: TRAIN_THREADS
    resources:
        mem_mb=TRAIN_MEM_MB,
    params:
        settings=settings("search_pareto"),
        out_dir=run_dir,
    script:
        "../workflow/scripts/search_pareto.py"


rule search:
    input:
        per_seed(rules.search_pareto.output.chosen, method=METHODS),
