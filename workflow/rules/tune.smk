# Test-time tuning from cached embeddings: one job per (dataset, split, backbone, method
# variant). Each writes a summary JSON (accuracy, videos evaluated of listed, skipped videos
# with reasons, settings, versions, commit) and the per-video predictions beside it.


rule tune_zeroshot:
    input:
        embeddings=lambda w: W.embedding_shards(config, w.dataset, f"split{w.split}", w.backbone),
        classes=lambda w: W.classes_csv(config, w.dataset, f"split{w.split}"),
        model=lambda w: W.backbone_inputs(config, w.backbone),
    output:
        summary=f"{RES}/zeroshot/{{dataset}}/{{backbone}}/{{method}}/split{{split}}.json",
        predictions=f"{RES}/zeroshot/{{dataset}}/{{backbone}}/{{method}}/split{{split}}.jsonl",
    log:
        f"{LOGS}/zeroshot/{{dataset}}/{{backbone}}/{{method}}/split{{split}}.log",
    benchmark:
        f"{BENCH}/zeroshot/{{dataset}}/{{backbone}}/{{method}}/split{{split}}.tsv"
    params:
        backbone=lambda w: W.backbone_arg(config, w.backbone),
        settings=lambda w: tune_settings(),
    threads: res("tune", "threads", 4)
    resources:
        **TUNE_RESOURCES,
    conda:
        "../../environment.yml"
    shell:
        "zar tune --embeddings {input.embeddings} --classes {input.classes} --backbone {params.backbone}"
        " --method {wildcards.method} --out {output.summary}"
        " --label {wildcards.dataset}/split{wildcards.split}/{wildcards.backbone}/{wildcards.method}"
        " {params.settings} > {log} 2>&1"


rule tune_ablation:
    input:
        embeddings=lambda w: W.embedding_shards(config, w.dataset, f"split{w.split}", config["ablations"]["backbone"]),
        classes=lambda w: W.classes_csv(config, w.dataset, f"split{w.split}"),
        model=W.backbone_inputs(config, config["ablations"]["backbone"]),
    output:
        summary=f"{RES}/ablations/{{dataset}}/{{variant}}/split{{split}}.json",
        predictions=f"{RES}/ablations/{{dataset}}/{{variant}}/split{{split}}.jsonl",
    log:
        f"{LOGS}/ablations/{{dataset}}/{{variant}}/split{{split}}.log",
    benchmark:
        f"{BENCH}/ablations/{{dataset}}/{{variant}}/split{{split}}.tsv"
    params:
        backbone=lambda w: W.backbone_arg(config, config["ablations"]["backbone"]),
        settings=ablation_settings,
    threads: res("tune", "threads", 4)
    resources:
        **TUNE_RESOURCES,
    conda:
        "../../environment.yml"
    shell:
        "zar tune --embeddings {input.embeddings} --classes {input.classes} --backbone {params.backbone}"
        " --method zar --out {output.summary} --label {wildcards.dataset}/split{wildcards.split}/{wildcards.variant}"
        " {params.settings} > {log} 2>&1"


rule tune_b2n:
    input:
        embeddings=lambda w: W.embedding_shards(config, w.dataset, f"b2n_{w.subset}", W.b2n_backbone(w.dataset, w.shot)),
        classes=lambda w: W.classes_csv(config, w.dataset, f"b2n_{w.subset}"),
        model=lambda w: W.backbone_inputs(config, W.b2n_backbone(w.dataset, w.shot)),
    output:
        summary=f"{RES}/b2n/{{dataset}}/s{{shot}}/{{subset}}.json",
        predictions=f"{RES}/b2n/{{dataset}}/s{{shot}}/{{subset}}.jsonl",
    log:
        f"{LOGS}/b2n/{{dataset}}/s{{shot}}/{{subset}}.log",
    benchmark:
        f"{BENCH}/b2n/{{dataset}}/s{{shot}}/{{subset}}.tsv"
    params:
        backbone=lambda w: W.backbone_arg(config, W.b2n_backbone(w.dataset, w.shot)),
        settings=lambda w: tune_settings(frames=config["b2n"]["frames"]),
        method=config["b2n"]["method"],
    threads: res("tune", "threads", 4)
    resources:
        **TUNE_RESOURCES,
    conda:
        "../../environment.yml"
    shell:
        "zar tune --embeddings {input.embeddings} --classes {input.classes} --backbone {params.backbone}"
        " --method {params.method} --out {output.summary} --label {wildcards.dataset}/b2n/s{wildcards.shot}/{wildcards.subset}"
        " {params.settings} > {log} 2>&1"
