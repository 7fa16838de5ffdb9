# Figures of the report (snakemake --report results/report.html): per-class analysis of every
# result, the ablation tables as plots, t-SNE of the video embeddings and attention maps.
# Each figure is a PNG with the CSV it is drawn from beside it. Batched to keep jobs few: one
# per table (per-class), per ablation table, and per backbone (t-SNE, attention over every
# dataset). Paths come from zar.plan.

FIGCFG = config["figures"]
PLOTTED_TABLES = table_registry.plotted()
DEMO_NOTE = " (DEMO: synthetic data, tiny CLIP)" if config.get("demo") else ""

FIGURE_RESOURCES = dict(
    mem_mb=resource("figures", "mem_mb"),
    runtime=resource("figures", "runtime"),
)


rule perclass:
    input:
        lambda w: plan.table_inputs(config, int(w.table)),
    output:
        report(
            directory(paths.pattern(config, "perclass_dir")),
            patterns=["{name}.png"],
            caption="../report/perclass.rst",
            category="2. Per-class analysis",
            subcategory="Table {table}",
            labels={"result": "{name}"},
        ),
    log:
        paths.log(config, "perclass_dir"),
    conda:
        "../envs/zar.yaml"
    threads: 1
    resources:
        **FIGURE_RESOURCES,
    params:
        strip=lambda w, output: os.path.dirname(os.path.dirname(os.path.dirname(output[0]))) + "/",
        top=FIGCFG["perclass"]["top"],
        note=shlex.quote(DEMO_NOTE),
    shell:
        "zar figures perclass --results {input} --strip {params.strip} --top {params.top} --note {params.note}"
        " --out {output} > {log} 2>&1"


rule ablation_figure:
    input:
        paths.pattern(config, "table", ext="csv"),
    output:
        figure=report(
            paths.pattern(config, "ablation_figure"),
            caption="../report/ablation.rst",
            category="3. Ablations",
            labels={"table": "Table {table}"},
        ),
        data=paths.pattern(config, "ablation_data"),
    log:
        paths.log(config, "ablation_figure"),
    wildcard_constraints:
        table="|".join(map(str, PLOTTED_TABLES)),
    conda:
        "../envs/zar.yaml"
    threads: 1
    resources:
        **FIGURE_RESOURCES,
    params:
        title=lambda w: shlex.quote(f"Table {w.table}{DEMO_NOTE}"),
    shell:
        "zar figures ablation --table {input} --number {wildcards.table} --title {params.title}"
        " --out {output.figure} > {log} 2>&1"


rule tsne:
    input:
        lambda w: sorted(
            {f for d in ZS_DATASETS for fs in plan.tsne_inputs(config, d, w.backbone).values() for f in fs}
        ),
    output:
        report(
            directory(paths.pattern(config, "tsne_dir")),
            patterns=["{dataset}.png"],
            caption="../report/tsne.rst",
            category="4. t-SNE of video embeddings",
            subcategory="{backbone}",
            labels={"dataset": "{dataset}"},
        ),
    log:
        paths.log(config, "tsne_dir"),
    conda:
        "../envs/zar.yaml"
    threads: resource("figures", "threads")
    resources:
        **FIGURE_RESOURCES,
    params:
        a=tsne_args,
        names=" ".join(ZS_DATASETS),
        opts=f"--max-points {FIGCFG['tsne']['max_points']} --perplexity {FIGCFG['tsne']['perplexity']}"
        f" --seed {FIGCFG['tsne']['seed']}",
        title=lambda w: shlex.quote(f"{{name}}, {w.backbone}{DEMO_NOTE}"),
    shell:
        "zar figures tsne --embeddings {params.a[embeddings]} --videos {params.a[videos]} --names {params.names}"
        " {params.opts} --title {params.title} --out {output} > {log} 2>&1"


rule attention:
    input:
        videos=[plan.attention_lists(config, d)["videos"] for d in ZS_DATASETS],
        classes=[plan.attention_lists(config, d)["classes"] for d in ZS_DATASETS],
        decoded=[f"{DATA}/{d}/decode_manifest.csv" for d in ZS_DATASETS],
        audit=splits_ready(),
        model=lambda w: plan.backbone_inputs(config, w.backbone),
    output:
        report(
            directory(paths.pattern(config, "attention_dir")),
            patterns=["{dataset}.png"],
            caption="../report/attention.rst",
            category="5. Attention maps",
            subcategory="{backbone}",
            labels={"dataset": "{dataset}"},
        ),
    log:
        paths.log(config, "attention_dir"),
    conda:
        "../envs/zar.yaml"
    threads: 1
    resources:
        **FIGURE_RESOURCES,
    params:
        roots=" ".join(plan.video_root(config, d) for d in ZS_DATASETS),
        names=" ".join(ZS_DATASETS),
        backbone=lambda w: plan.backbone_arg(config, w.backbone),
        n=FIGCFG["attention"]["videos"],
        mode=FIGCFG["attention"]["mode"],
        settings=plan.settings_args(
            {
                "views.frames": config["method"]["views"]["frames"],
                "run.backend": config["method"]["run"]["backend"],
                "run.timeout": config["method"]["run"]["timeout"],
            }
        ),
        title=lambda w: shlex.quote(f"{{name}}, {w.backbone}{DEMO_NOTE}"),
    shell:
        "zar figures attention --videos {input.videos} --classes {input.classes} --root {params.roots}"
        " --names {params.names} --ext .mp4 --backbone {params.backbone} --n-videos {params.n} --mode {params.mode}"
        " {params.settings} --title {params.title} --out {output} > {log} 2>&1"


rule cost_figure:
    input:
        paths.pattern(config, "table", table=6, ext="csv"),
    output:
        figure=report(
            paths.pattern(config, "cost_figure"),
            caption="../report/cost.rst",
            category="6. Test-time methods",
        ),
        data=paths.pattern(config, "cost_data"),
    log:
        paths.log(config, "cost_figure"),
    conda:
        "../envs/zar.yaml"
    threads: 1
    resources:
        **FIGURE_RESOURCES,
    params:
        title=shlex.quote(f"Test-time methods: accuracy against cost{DEMO_NOTE}"),
    shell:
        "zar figures cost --table {input} --title {params.title} --out {output.figure} > {log} 2>&1"
