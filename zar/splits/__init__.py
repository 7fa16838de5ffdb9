"""Split files: build them from the published sources, and audit them.

``zar splits build`` writes ``splits/`` (class lists, video lists, README, checksum manifest)
from pinned source files; ``zar splits audit`` checks every invariant of a ``splits/`` folder.
"""
