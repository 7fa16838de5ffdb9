# Figures and the pages of the Snakemake report (snakemake --report results/report.html):
# per-class analysis of every result, the ablation tables as plots, t-SNE of the video
# embeddings, attention maps, and the tables as HTML pages. Each figure is a PNG with the
# CSV it is drawn from beside it. Paths come from zar.workflow.

FIG = f"{RES}/figures"
FIGCFG = config["figures"]
DEMO_NOTE = " (DEMO: synthetic data, tiny CLIP)" if config.get("demo") else ""

FIGURE_RESOURCES = dict(
    mem_mb=res("figures", "mem_mb", 8000),
    runtime=res("figures", "runtime", 60),
)


localrules:
    table_page,


rule table_page:
    input:
        f"{RES}/table{{table}}.md",
    output:
        report(
            f"{RES}/report/table{{table}}.html",
            caption="../report/table.rst",
            category="1. Tables",
            labels={"table": "Table {table}"},
        ),
    log:
        f"{LOGS}/report/table{{table}}.log",
    conda:
        "../../environment.yml"
    shell:
        "zar figures table --markdown {input} --out {output} > {log} 2>&1"


rule perclass:
    input:
        summary=f"{RES}/{{group}}/{{dataset}}/{{name}}.json",
        predictions=f"{RES}/{{group}}/{{dataset}}/{{name}}.jsonl",
    output:
        figure=report(
            f"{FIG}/perclass/{{group}}/{{dataset}}/{{name}}.png",
            caption="../report/perclass.rst",
            category="2. Per-class analysis",
            subcategory="{group} / {dataset}",
            labels={"result": "{name}"},
        ),
        per_class=f"{FIG}/perclass/{{group}}/{{dataset}}/{{name}}.csv",
        confusion=f"{FIG}/perclass/{{group}}/{{dataset}}/{{name}}_confusion.csv",
        helps_hurts=f"{FIG}/perclass/{{group}}/{{dataset}}/{{name}}_helps_hurts.csv",
    log:
        f"{LOGS}/figures/perclass/{{group}}/{{dataset}}/{{name}}.log",
    wildcard_constraints:
        group="|".join(W.RESULT_GROUPS),
        name=r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*",
    params:
        top=FIGCFG["perclass"]["top"],
        title=lambda w: shlex.quote(f"{w.group}/{w.dataset}/{w.name}{DEMO_NOTE}"),
    threads: 1
    resources:
        **FIGURE_RESOURCES,
    conda:
        "../../environment.yml"
    shell:
        "zar figures perclass --result {input.summary} --top {params.top} --title {params.title}"
        " --out {output.figure} > {log} 2>&1"


rule ablation_figure:
    input:
        f"{RES}/table{{table}}.csv",
    output:
        figure=report(
            f"{FIG}/ablation_table{{table}}.png",
            caption="../report/ablation.rst",
            category="3. Ablations",
            labels={"table": "Table {table}"},
        ),
        data=f"{FIG}/ablation_table{{table}}.csv",
    log:
        f"{LOGS}/figures/ablation_table{{table}}.log",
    wildcard_constraints:
        table="[345]",
    params:
        title=lambda w: shlex.quote(f"Table {w.table}{DEMO_NOTE}"),
    threads: 1
    resources:
        **FIGURE_RESOURCES,
    conda:
        "../../environment.yml"
    shell:
        "zar figures ablation --table {input} --number {wildcards.table} --title {params.title}"
        " --out {output.figure} > {log} 2>&1"


rule tsne:
    input:
        lambda w: sorted({f for pair in W.tsne_inputs(config, w.dataset, w.backbone) for f in pair}),
    output:
        figure=report(
            f"{FIG}/tsne/{{dataset}}/{{backbone}}.png",
            caption="../report/tsne.rst",
            category="4. t-SNE of video embeddings",
            subcategory="{dataset}",
            labels={"backbone": "{backbone}"},
        ),
        points=f"{FIG}/tsne/{{dataset}}/{{backbone}}.csv",
    log:
        f"{LOGS}/figures/tsne/{{dataset}}/{{backbone}}.log",
    params:
        embeddings=lambda w: " ".join(e for e, _ in W.tsne_inputs(config, w.dataset, w.backbone)),
        classes=lambda w: " ".join(c for _, c in W.tsne_inputs(config, w.dataset, w.backbone)),
        opts=f"--max-points {FIGCFG['tsne']['max_points']} --perplexity {FIGCFG['tsne']['perplexity']}"
        f" --seed {FIGCFG['tsne']['seed']}",
        title=lambda w: shlex.quote(f"{config['datasets'][w.dataset].get('title', w.dataset)}, {w.backbone}{DEMO_NOTE}"),
    threads: res("figures", "threads", 2)
    resources:
        **FIGURE_RESOURCES,
    conda:
        "../../environment.yml"
    shell:
        "zar figures tsne --embeddings {params.embeddings} --classes {params.classes} {params.opts}"
        " --title {params.title} --out {output.figure} > {log} 2>&1"


rule attention:
    input:
        unpack(lambda w: W.attention_lists(config, w.dataset)),
        decoded=f"{DATA}/{{dataset}}/decode_manifest.csv",
        audit=splits_ready(),
        model=lambda w: W.backbone_inputs(config, w.backbone),
    output:
        figure=report(
            f"{FIG}/attention/{{dataset}}/{{backbone}}.png",
            caption="../report/attention.rst",
            category="5. Attention maps",
            subcategory="{dataset}",
            labels={"backbone": "{backbone}"},
        ),
        maps=f"{FIG}/attention/{{dataset}}/{{backbone}}.csv",
    log:
        f"{LOGS}/figures/attention/{{dataset}}/{{backbone}}.log",
    params:
        root=lambda w: W.video_root(config, w.dataset),
        backbone=lambda w: W.backbone_arg(config, w.backbone),
        n=FIGCFG["attention"]["videos"],
        mode=FIGCFG["attention"]["mode"],
        settings=W.settings_args(
            {
                "views.frames": config["method"]["views"]["frames"],
                "run.backend": config["method"]["run"]["backend"],
                "run.timeout": config["method"]["run"]["timeout"],
            }
        ),
        title=lambda w: shlex.quote(f"{config['datasets'][w.dataset].get('title', w.dataset)}, {w.backbone}{DEMO_NOTE}"),
    threads: 1
    resources:
        **FIGURE_RESOURCES,
    conda:
        "../../environment.yml"
    shell:
        "zar figures attention --videos {input.videos} --classes {input.classes} --root {params.root} --ext .mp4"
        " --backbone {params.backbone} --frames {params.n} --mode {params.mode} {params.settings}"
        " --title {params.title} --out {output.figure} > {log} 2>&1"
