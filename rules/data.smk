# Milestone `data`: check the configured data, write the splits' sizes and class counts.


rule prepare_data:
    input:
        code=stage_code("prepare_data"),
        space=SPACE_FILE,
        data=data_files(config),
    output:
        summary=str(LAYOUT.data_summary),
    log:
        str(LAYOUT.log("prepare_data")),
    params:
        settings=settings("prepare_data"),
    threads: 1
    script:
        "../workflow/scripts/prepare_data.py"


rule data:
    input:
        rules.prepare_data.output,
