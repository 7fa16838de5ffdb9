# Normalise every listed video (short side, h264, constant frame rate, frequent keyframes),
# each in a time-limited worker: a pathological file is recorded as corrupt, never a hang.


rule decode:
    input:
        manifest=f"{DATA}/{{dataset}}/download_manifest.csv",
        lists=lambda w: dataset_lists(w.dataset),
    output:
        f"{DATA}/{{dataset}}/decode_manifest.csv",
    log:
        f"{LOGS}/decode/{{dataset}}.log",
    benchmark:
        f"{BENCH}/decode/{{dataset}}.tsv"
    priority: 40  # the fine-tuning waits for this data: schedule it early
    conda:
        "../envs/zar.yaml"
    threads: resource("decode", "threads")
    resources:
        runtime=resource("decode", "runtime"),
        mem_mb=resource("decode", "mem_mb"),
    params:
        root=lambda w: f"{DATA}/{w.dataset}",
        lists=lambda w, input: " ".join(f"--list {l}" for l in input.lists),
        short_side=config["decode"]["short_side"],
        timeout=config["decode"]["timeout"],
    shell:
        "zar decode --dataset {wildcards.dataset} --root {params.root} {params.lists}"
        " --workers {threads} --short-side {params.short_side} --timeout {params.timeout} > {log} 2>&1"
