"""zar: zero-shot video action recognition with dynamic prompt tuning (ZAR), as a benchmark."""

__version__ = "0.1.0"
