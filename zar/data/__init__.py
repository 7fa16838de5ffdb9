"""Data tooling: download raw datasets with a manifest, normalise videos, safe archive extraction.

Layout under a dataset root (default ``data/<dataset>``)::

    raw/<path>                 downloaded originals, official layout (list ``path`` column)
    videos/<path>.mp4          normalised copies (``zar decode``)
    archives/                  downloaded archives and their ``.done`` markers
    annotations/               official split files (UCF101, HMDB51)
    lists/                     Kinetics video lists made from the annotation CSVs
    download_manifest.csv      every listed video: ok / missing / corrupt, with the reason
    download_manifest.json     archives fetched (url, bytes, observed sha256), counts, provenance
    decode_manifest.csv        every listed video after normalising, with source and output facts
"""
