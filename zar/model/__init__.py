"""Layer 1: the backbone (spec, weights, build, preprocessing, autocast)."""
