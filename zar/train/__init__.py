"""`zar train`: fine-tune CLIP on videos (docs/protocol.md §4), on one device or many (torchrun).

    zar train --videos LIST.csv --classes classes.csv --root VIDEO_ROOT --out DIR \\
              [--backbone vitb16_openai] [--recipe k400|b2n|tiny|FILE.yaml] [--resume]
    torchrun --standalone --nproc_per_node 8 -m zar train ...    (one process per GPU)

Writes ``DIR/model.safetensors`` + ``DIR/model.json`` (a backbone for ``zar evaluate``),
``DIR/train_log.jsonl``, ``DIR/train_config.json`` and resumable state files in
``DIR/state/``. Modules: ``recipe`` (hyper-parameters), ``data`` (lists, batch plan,
Dataset), ``augment`` (sampling, augmentation, mixing), ``loop`` (training),
``checkpoint`` (files), ``vifi`` (import of ViFi-CLIP checkpoints), ``bench`` (speed figures),
``cli`` (the verb).

Preemption: SIGTERM or SIGUSR1 makes every process drop the step in flight, write a state
file and exit with status 75; ``--resume`` then continues to the same weights as an
uninterrupted run. State files are also written at each epoch's end (and every
``save_every`` steps), so a hard kill loses at most that much work.
"""
