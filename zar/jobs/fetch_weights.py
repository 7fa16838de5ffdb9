"""`zar fetch-weights`: download backbone weights into the cache once, on a machine with
internet (jobs then load them offline)."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--arch", default="ViT-B-16", help="open_clip architecture (default ViT-B-16)")
    p.add_argument("--pretrained", default="openai", help="open_clip pretrained tag (default openai)")
    p.add_argument("--cache-dir", default=None, help="cache directory (default: the Hugging Face cache)")


def run(args) -> int:
    from zar.model.backbone import BackboneSpec, resolve_weights

    print(resolve_weights(BackboneSpec(args.arch, args.pretrained), cache_dir=args.cache_dir))
    return 0
