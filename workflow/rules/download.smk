# Download (or, for the demo, generate) the raw videos of a dataset, with a manifest that
# accounts for every listed video (ok / missing + reason / corrupt + reason).


rule download_annotations:
    output:
        videos=f"{DATA}/{{dataset}}/lists/train.csv",
        classes=f"{DATA}/{{dataset}}/lists/classes.csv",
    log:
        f"{LOGS}/download/{{dataset}}_annotations.log",
    params:
        root=lambda w: f"{DATA}/{w.dataset}",
        sources=lambda w: f"--sources {config['datasets'][w.dataset]['sources_file']}" if config["datasets"][w.dataset].get("sources_file") else "",
    priority: 40  # the fine-tuning waits for this data: schedule it early
    conda:
        "../../environment.yml"
    shell:
        "zar download --dataset {wildcards.dataset} --annotations --root {params.root} {params.sources} > {log} 2>&1"


rule download:
    input:
        lists=lambda w: dataset_lists(w.dataset),
        splits=f"{SPLITS}/MANIFEST.sha256",
    output:
        f"{DATA}/{{dataset}}/download_manifest.csv",
    log:
        f"{LOGS}/download/{{dataset}}.log",
    params:
        root=lambda w: f"{DATA}/{w.dataset}",
        lists=lambda w, input: " ".join(f"--list {l}" for l in input.lists),
        source=lambda w: config["datasets"][w.dataset]["source"],
        opts=lambda w: " ".join(filter(None, [config["datasets"][w.dataset].get("download_options", ""),
            f"--sources {config['datasets'][w.dataset]['sources_file']}" if config["datasets"][w.dataset].get("sources_file") else ""])),
        demo_config=config.get("demo_data_config", ""),
        data_root=lambda w, output: os.path.dirname(os.path.dirname(output[0])),
    threads: lambda w: config["download"]["workers"]
    resources:
        runtime=res("download", "runtime", 1440),
        mem_mb=res("download", "mem_mb", 8000),
    priority: 40  # the fine-tuning waits for this data: schedule it early
    conda:
        "../../environment.yml"
    shell:
        "if [ {params.source} = synthetic ]; then"
        "  zar demo-data videos --dataset {wildcards.dataset} --data-root {params.data_root} --config {params.demo_config};"
        " else"
        "  zar download --dataset {wildcards.dataset} --source {params.source} --root {params.root}"
        "   {params.lists} --workers {threads} {params.opts};"
        " fi > {log} 2>&1"
