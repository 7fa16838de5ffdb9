# The GPU-heavy step: each dataset's videos are encoded ONCE per backbone and frame setting,
# for every list that needs them (e.g. the three test splits, which share most videos), with
# the superset of views its experiments need (e.g. 9 crops where Table 5 asks for them).
# Every tuning job (the main result and all ablation variants) reads the cache. Sharded.


rule encode:
    input:
        decoded=f"{DATA}/{{dataset}}/decode_manifest.csv",
        lists=lambda w: encode_job(w).lists,
        audit=splits_ready(),
        model=lambda w: plan.backbone_inputs(config, w.backbone),
    output:
        paths.pattern(config, "embeddings"),
    log:
        paths.log(config, "embeddings"),
    benchmark:
        paths.benchmark(config, "embeddings")
    priority: 10  # before tuning jobs, so tuning finds its inputs early
    conda:
        "../envs/zar.yaml"
    threads: resource("encode", "threads")
    resources:
        gpu=resource("encode", "gpu"),
        mem_mb=resource("encode", "mem_mb"),
        runtime=resource("encode", "runtime"),
    params:
        root=lambda w: plan.video_root(config, w.dataset),
        backbone=lambda w: plan.backbone_arg(config, w.backbone),
        settings=lambda w: plan.settings_args(encode_job(w).settings),
    shell:
        "zar encode --videos {input.lists} --root {params.root} --ext .mp4"
        " --backbone {params.backbone} --shard {wildcards.k}/{wildcards.n} --out {output}"
        " {params.settings} > {log} 2>&1"
