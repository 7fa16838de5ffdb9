# Download (the demo: generate) the videos of a dataset, with a manifest that accounts for
# every listed video (ok / missing + reason / corrupt + reason).


localrules:
    download_annotations,


rule download_annotations:
    output:
        videos=f"{DATA}/{{dataset}}/lists/train.csv",
        classes=f"{DATA}/{{dataset}}/lists/classes.csv",
    log:
        f"{LOGS}/download/{{dataset}}_annotations.log",
    priority: 40  # the fine-tuning waits for this data: schedule it early
    conda:
        "../envs/zar.yaml"
    params:
        root=lambda w: f"{DATA}/{w.dataset}",
        opts=download_options,
    shell:
        "zar download --dataset {wildcards.dataset} --annotations --root {params.root} {params.opts} > {log} 2>&1"


rule download:
    input:
        lists=lambda w: dataset_lists(w.dataset),
        splits=f"{SPLITS}/MANIFEST.sha256",
    output:
        f"{DATA}/{{dataset}}/download_manifest.csv",
    log:
        f"{LOGS}/download/{{dataset}}.log",
    priority: download_priority  # the fine-tuning waits for this data: schedule it early
    conda:
        "../envs/zar.yaml"
    threads: resource("download", "threads")
    resources:
        runtime=resource("download", "runtime"),
        mem_mb=resource("download", "mem_mb"),
    params:
        root=lambda w: f"{DATA}/{w.dataset}",
        lists=lambda w, input: " ".join(f"--list {l}" for l in input.lists),
        source=lambda w: config["datasets"][w.dataset]["source"],
        opts=download_options,
    shell:
        "zar download --dataset {wildcards.dataset} --source {params.source} --root {params.root}"
        " {params.lists} --workers {threads} {params.opts} > {log} 2>&1"
