"""Layer 0: errors, files, provenance, typed settings fields, integrity, the dataset registry, the split-file records, metrics."""
