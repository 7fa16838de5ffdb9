# Fine-tuning: CLIP on Kinetics-400 (one multi-GPU job through torchrun) and the 16-shot
# base-class models of the base-to-novel protocol (one job per shot list).


rule train:
    input:
        unpack(train_inputs),
    output:
        weights=f"{RES}/models/{{backbone}}/model.safetensors",
        meta=f"{RES}/models/{{backbone}}/model.json",
    log:
        f"{LOGS}/models/{{backbone}}.log",
    benchmark:
        f"{BENCH}/models/{{backbone}}.tsv"
    params:
        p=train_params,
        out=lambda w: W.model_dir(config, w.backbone),
    threads: lambda w: train_res(w, "threads", 8)
    resources:
        gpu=lambda w: train_res(w, "gpu", 1),
        mem_mb=lambda w: train_res(w, "mem_mb", 64000),
        runtime=lambda w: train_res(w, "runtime", 1440),
    priority: 50  # every job on the fine-tuned backbone waits for the model: schedule it first
    conda:
        "../../environment.yml"
    shell:
        "{params.p[launcher]} train --videos {input.videos} --classes {input.classes}"
        " --root {params.p[root]} --ext .mp4 --backbone {params.p[backbone]} --recipe {params.p[recipe]}"
        " --out {params.out} --resume > {log} 2>&1"
