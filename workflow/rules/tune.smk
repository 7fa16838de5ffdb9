# Test-time tuning from cached embeddings: one job per evaluation (a video list, a backbone,
# one method variant). Each writes a summary JSON (accuracy after tuning, before it and of
# the views' ensemble; videos evaluated of listed, skipped videos with reasons, settings,
# cost, versions, commit) and the per-video predictions beside it. The three rules share
# one body; they differ in where their result lives.


rule tune_zeroshot:
    input:
        unpack(tune_inputs("zeroshot")),
    output:
        summary=paths.pattern(config, "zeroshot_result"),
        predictions=paths.predictions(paths.pattern(config, "zeroshot_result")),
    log:
        paths.log(config, "zeroshot_result"),
    benchmark:
        paths.benchmark(config, "zeroshot_result")
    conda:
        "../envs/zar.yaml"
    threads: resource("tune", "threads")
    resources:
        gpu=resource("tune", "gpu"),
        mem_mb=resource("tune", "mem_mb"),
        runtime=resource("tune", "runtime"),
    params:
        p=tune_params("zeroshot"),
    shell:
        "zar tune --embeddings {input.embeddings} --videos {input.videos} --classes {input.classes}"
        " --backbone {params.p[backbone]} --method {params.p[method]} --out {output.summary}"
        " --label {params.p[label]} {params.p[settings]}"
        " --root {params.p[root]} --ext .mp4 > {log} 2>&1"


use rule tune_zeroshot as tune_ablation with:
    input:
        unpack(tune_inputs("ablation")),
    output:
        summary=paths.pattern(config, "ablation_result"),
        predictions=paths.predictions(paths.pattern(config, "ablation_result")),
    log:
        paths.log(config, "ablation_result"),
    benchmark:
        paths.benchmark(config, "ablation_result")
    params:
        p=tune_params("ablation"),


use rule tune_zeroshot as tune_b2n with:
    input:
        unpack(tune_inputs("b2n")),
    output:
        summary=paths.pattern(config, "b2n_result"),
        predictions=paths.predictions(paths.pattern(config, "b2n_result")),
    log:
        paths.log(config, "b2n_result"),
    benchmark:
        paths.benchmark(config, "b2n_result")
    params:
        p=tune_params("b2n"),


# Table 6: every test-time method on one (dataset, backbone, split), one job for all of them
# (one Python start, the cache read once), one result file per method.
TESTTIME = config["testtime"]["methods"]


rule tune_testtime:
    input:
        unpack(tune_inputs("testtime")),
    output:
        summaries=[paths.pattern(config, "testtime_result", method=m) for m in TESTTIME],
        predictions=[paths.predictions(paths.pattern(config, "testtime_result", method=m)) for m in TESTTIME],
    log:
        paths.log(config, "testtime_result", method="all"),
    benchmark:
        paths.benchmark(config, "testtime_result", method="all")
    conda:
        "../envs/zar.yaml"
    threads: resource("tune", "threads")
    resources:
        gpu=resource("tune", "gpu"),
        mem_mb=resource("tune", "mem_mb"),
        runtime=resource("tune", "runtime"),
    params:
        p=tune_params("testtime"),
        methods=",".join(TESTTIME),
        label=lambda w: f"{w.dataset}/split{w.split}/{w.backbone}",
        out=lambda w: paths.path(
            config, "testtime_result", dataset=w.dataset, backbone=w.backbone, split=w.split, method="{method}"
        ),
    shell:
        "zar tune --embeddings {input.embeddings} --videos {input.videos} --classes {input.classes}"
        " --backbone {params.p[backbone]} --method {params.methods} --out {params.out}"
        " --label {params.label} {params.p[settings]}"
        " --root {params.p[root]} --ext .mp4 > {log} 2>&1"
