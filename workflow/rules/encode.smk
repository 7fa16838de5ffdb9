# The GPU-heavy step: every view any experiment on (dataset, evalset, backbone) needs is
# encoded ONCE (a superset: e.g. 9 crops where Table 5 needs them) and cached; every tuning
# job (the main result and all ablation variants) reads the cache. Sharded over videos.


rule encode:
    input:
        unpack(encode_inputs),
    output:
        f"{RES}/embeddings/{{dataset}}/{{evalset}}/{{backbone}}/f{{frames}}/shard{{k}}of{{n}}.pt",
    log:
        f"{LOGS}/embeddings/{{dataset}}/{{evalset}}/{{backbone}}/f{{frames}}/shard{{k}}of{{n}}.log",
    benchmark:
        f"{BENCH}/embeddings/{{dataset}}/{{evalset}}/{{backbone}}/f{{frames}}/shard{{k}}of{{n}}.tsv"
    params:
        root=lambda w: W.video_root(config, w.dataset),
        backbone=lambda w: W.backbone_arg(config, w.backbone),
        settings=encode_settings,
    threads: res("encode", "threads", 8)
    resources:
        gpu=res("encode", "gpu", 1),
        mem_mb=res("encode", "mem_mb", 32000),
        runtime=res("encode", "runtime", 720),
    priority: 10  # before tuning jobs, so tuning finds its inputs early
    conda:
        "../../environment.yml"
    shell:
        "zar encode --videos {input.videos} --classes {input.classes} --root {params.root} --ext .mp4"
        " --backbone {params.backbone} --shard {wildcards.k}/{wildcards.n} --out {output}"
        " {params.settings} > {log} 2>&1"
