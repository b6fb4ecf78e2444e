# Milestone `data`: check the configured data, write the splits' sizes and class counts.


rule prepare_data:
    input:
        code=stage_code("prepare_data"),
        space=SPACE_FILE,
        data=data_files(EXPERIMENT),
    output:
        summary=str(LAYOUT.data_summary),
    log:
        str(LAYOUT.log("prepare_data")),
    conda:
        "../environment.yml"
    threads: 1
    params:
        settings=settings("prepare_data"),
    script:
        "../workflow/scripts/prepare_data.py"


rule data:
    input:
        rules.prepare_data.output,
