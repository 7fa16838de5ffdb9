# The paper's tables: ours (and, for the paper's config, the paper's numbers beside them),
# as .md, .tex, the .csv they come from, and an HTML page for the report.


localrules:
    tables,


rule tables:
    input:
        lambda w: plan.table_inputs(config, int(w.table)),
    output:
        md=paths.pattern(config, "table", ext="md"),
        tex=paths.pattern(config, "table", ext="tex"),
        csv=paths.pattern(config, "table", ext="csv"),
        html=report(
            paths.pattern(config, "table", ext="html"),
            caption="../report/table.rst",
            category="1. Tables",
            labels={"table": "Table {table}"},
        ),
    log:
        f"{LOGS}/tables/table{{table}}.log",
    conda:
        "../envs/zar.yaml"
    params:
        spec=lambda w: shlex.quote(json.dumps(plan.table_spec(config, int(w.table)))),
        prefix=lambda w, output: os.path.splitext(output.md)[0],
    shell:
        "zar tables --spec {params.spec} --out {params.prefix} > {log} 2>&1"
