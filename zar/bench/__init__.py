"""Layer 7, `zar bench`: speed figures, printed (a benchmark asserts nothing). Subcommands:

- ``pipeline`` (the main one): in one run on one device, zar's path (`zar encode` +
  `zar tune` as the workflow runs them: readers ahead in worker processes, each (frame, crop)
  encoded once, videos tuned in batches, the text tower cut at the last end-of-text token)
  against a straightforward reference written here (one video at a time, each of the 48
  views read and encoded on its own, the full 77-token text context, the model's fp32
  weights under autocast), and zar's path again with the other image precision
  (``run.image_precision``: the protocol's autocast, or the bf16 image tower). Per video:
  read, encode, tune, total, their ratio; images/s and the share of the device's matrix rate
  (of the dtype the tower multiplies in) measured in the same run; peak memory; the start-up
  of a `zar` job; GFLOPs; the tuner alone at several ``run.tune_batch`` sizes (and the
  records `zar tune` writes); and an estimate of the paper's Table 1 in device-hours from the
  measured rates and the list sizes in ``splits/``. ``--json`` keeps every figure.
- ``tower``: the image tower alone, eager and (``--compile``) compiled.
- ``table1``: that estimate again from a ``--json`` file (e.g. one measured on a GPU node
  whose environment lacks the workflow's packages).
- ``train-step`` / ``train-data``: the fine-tuning step and input pipeline (clips/s).
- ``read``: the video reader's backends (ms per batched read).
"""
