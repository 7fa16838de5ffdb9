# Fine-tuning: CLIP on Kinetics-400 (one multi-GPU job through torchrun) and the 16-shot
# base-class models of the base-to-novel protocol (one job per shot list).


rule train:
    input:
        unpack(train_inputs),
    output:
        weights=paths.pattern(config, "model_weights"),
        meta=paths.pattern(config, "model_meta"),
    log:
        paths.log(config, "model_dir"),
    benchmark:
        paths.benchmark(config, "model_dir")
    priority: 50  # every job on the fine-tuned backbone waits for the model: schedule it first
    conda:
        "../envs/zar.yaml"
    threads: train_res("threads")
    resources:
        gpu=train_res("gpu"),
        mem_mb=train_res("mem_mb"),
        runtime=train_res("runtime"),
    params:
        p=train_params,
        out=lambda w: plan.model_dir(config, w.backbone),
    shell:
        "{params.p[launcher]} train --videos {input.videos} --classes {input.classes}"
        " --root {params.p[root]} --ext .mp4 --backbone {params.p[backbone]} --recipe {params.p[recipe]}"
        " --frames {params.p[frames]} --out {params.out} --resume > {log} 2>&1"
