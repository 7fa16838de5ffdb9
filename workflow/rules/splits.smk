# The split files. For the paper they are committed in splits/ (built from the published
# sources by `zar splits build`); the audit checks every invariant before anything is
# evaluated. The demo builds its own synthetic splits with the same layout.


localrules:
    splits,
    splits_audit,


rule splits:
    output:
        manifest=f"{SPLITS}/MANIFEST.sha256",
        files=[f for f in split_files() if not f.endswith("MANIFEST.sha256")],
    log:
        f"{LOGS}/splits/build.log",
    conda:
        "../envs/zar.yaml"
    params:
        builder=config["splits"]["builder"],
        sources=config["splits"]["sources"],
        demo=f"--demo-config {config['demo_data_config']}" if config["demo_data_config"] else "",
        splits=lambda w, output: os.path.dirname(output.manifest),
    shell:
        "zar splits build --builder {params.builder} --splits {params.splits} --sources {params.sources}"
        " {params.demo} > {log} 2>&1"


rule splits_audit:
    input:
        f"{SPLITS}/MANIFEST.sha256",
    output:
        paths.pattern(config, "splits_audit"),
    log:
        f"{LOGS}/splits/audit.log",
    conda:
        "../envs/zar.yaml"
    params:
        sources=config["splits"]["sources"],
        expect=config["splits"]["builder"],
        splits=lambda w, input: os.path.dirname(input[0]),
    shell:
        "zar splits audit --splits {params.splits} --sources {params.sources} --expect {params.expect}"
        " > {output}.tmp 2> {log} && mv {output}.tmp {output}"
