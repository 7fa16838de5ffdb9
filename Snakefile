# The ZAR benchmark workflow: raw data -> splits -> fine-tuning -> encode -> tune -> tables, figures.
#   snakemake --cores all results/table1.md                       (the paper; GPU, data)
#   snakemake --cores all --directory demo results/table1.md      (the demo; CPU, minutes)
#   snakemake --directory demo --report results/report.html       (the report: tables and figures)
# See README.md for targets, the SLURM profile and rerunning one ablation.
import os

from snakemake.utils import min_version, validate

import zar.plan as plan

min_version("9.0")


configfile: "config/config.yaml"


SCHEMA = os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
plan.check_config(config, SCHEMA)  # a few short lines on a bad config, not the whole schema
validate(config, SCHEMA)  # fills in the defaults


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/decode.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        plan.all_targets(config),
