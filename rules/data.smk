# Milestone `data`: check the configured data, write the splits' sizes and class counts.


rule prepare_data:
    output:
        summary=f"{R}/data/summary.json",
    log:
        f"{R}/logs/prepare_data.log",
    params:
        config=CONFIG_FILE,
        settings=config["data"],
    threads: 1
    script:
        "../workflow/scripts/prepare_data.py"


rule data:
    input:
        rules.prepare_data.output,
