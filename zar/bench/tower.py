"""`zar bench tower`: the image tower alone at one batch size, both precisions, eager and
(``--compile``) compiled by torch.compile."""
from __future__ import annotations

import time

import torch

from zar.bench.device import random_images, sync, tower_rate


def add_tower_arguments(p) -> None:
    from zar.method.settings import add_settings_arguments

    p.add_argument("--backbone", default="ViT-B-16:none", help="backbone to time (default ViT-B-16, random weights)")
    p.add_argument("--batch", type=int, default=256, help="images per call (default 256, run.batch_size's default)")
    p.add_argument("--reps", type=int, default=20, help="timed calls per variant (default 20)")
    p.add_argument("--compile", action="store_true", help="also time the tower compiled by torch.compile")
    add_settings_arguments(p)


def compiled_line(enc, images: torch.Tensor, reps: int, eager_ips: float, eager_out: torch.Tensor) -> str:
    """The compiled tower's compile time, images/s and how far its features are from the eager
    ones (the largest distance between L2-normalised features, a relative error)."""
    import torch.nn.functional as F

    enc.visual = torch.compile(enc.visual)
    t0 = time.perf_counter()
    enc.encode_batch(images)
    sync(str(enc.device))
    compile_s = time.perf_counter() - t0
    ips, out = tower_rate(enc, images, reps)
    dist = float((F.normalize(out, dim=-1) - F.normalize(eager_out, dim=-1)).norm(dim=-1).max())
    return (f"; compiled {ips:>9,.0f} images/s ({ips / eager_ips:.2f}x), {compile_s:.0f} s to compile, "
            f"features within {dist:.1e} of eager")


def tower(args) -> int:
    """The image tower alone at ``--batch`` images per call, for both precisions: images/s
    eager and, with ``--compile``, compiled."""
    from zar.core.provenance import provenance
    from zar.method.encoder import VideoEncoder
    from zar.method.settings import load_settings
    from zar.model.backbone import build_model

    settings = load_settings(args.config, args.set)
    device = settings.run.resolved_device()
    model, pre = build_model(args.backbone, device=device)
    images = random_images(args.batch, pre.image_size, device)
    print(f"device: {provenance()['device']}; backbone {args.backbone}; {args.batch} images per call, median of "
          f"{args.reps}; torch {torch.__version__}")
    for precision in ("autocast", "bf16"):
        enc = VideoEncoder(model, pre, settings.views, device, batch_size=args.batch, precision=precision)
        ips, ref = tower_rate(enc, images, args.reps)
        line = f"{precision:<9} eager {ips:>9,.0f} images/s"
        if args.compile:
            line += compiled_line(enc, images, args.reps, ips, ref)
        print(line)
    return 0
