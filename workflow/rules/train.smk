# Fine-tuning: CLIP on Kinetics-400 (one multi-GPU job through torchrun) and the 16-shot
# base-class models of the base-to-novel protocol (one job per shot list).


def train_job(w):
    """dataset, lists, initial backbone, recipe, clip length, GPUs and resources of one model."""
    t = W.trained_backbones(config)[w.backbone]
    if "b2n" in t:
        b, ds = config["b2n"], t["b2n"]
        return {"dataset": ds, "videos": W.b2n_train_csv(config, ds, t["shot"]),
                "classes": W.classes_csv(config, ds, "b2n_base"), "init": b["init"], "recipe": b["recipe"],
                "frames": b["train_frames"], "gpus": b["gpus"], "resources": "train_b2n"}
    e = config["training"][t]
    return {"dataset": e["dataset"], "videos": e["videos"], "classes": e["classes"], "init": e["init"],
            "recipe": e["recipe"], "frames": e["frames"], "gpus": e["gpus"], "resources": "train"}


def train_inputs(w):
    j = train_job(w)
    return {"videos": j["videos"], "classes": j["classes"], "decoded": f"{DATA}/{j['dataset']}/decode_manifest.csv",
            "audit": splits_ready(), "init": W.backbone_inputs(config, j["init"])}


def train_params(w):
    j = train_job(w)
    launcher = "zar" if j["gpus"] <= 1 else f"torchrun --standalone --nproc_per_node {j['gpus']} -m zar"
    return {"root": W.video_root(config, j["dataset"]), "backbone": W.backbone_arg(config, j["init"]),
            "recipe": j["recipe"], "frames": j["frames"], "launcher": launcher}


def train_res(key, default):
    return lambda w: res(train_job(w)["resources"], key, default)


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
    threads: train_res("threads", 8)
    resources:
        gpu=train_res("gpu", 1),
        mem_mb=train_res("mem_mb", 64000),
        runtime=train_res("runtime", 1440),
    priority: 50  # every job on the fine-tuned backbone waits for the model: schedule it first
    conda:
        "../envs/zar.yaml"
    shell:
        "{params.p[launcher]} train --videos {input.videos} --classes {input.classes}"
        " --root {params.p[root]} --ext .mp4 --backbone {params.p[backbone]} --recipe {params.p[recipe]}"
        " --frames {params.p[frames]} --out {params.out} --resume > {log} 2>&1"
