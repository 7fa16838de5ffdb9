"""The paper's published numbers (docs/protocol.md §6), quoted beside ours in every table.

Liang, Lu, Tao, Allebach, "ZAR: Zero-Shot Action Recognition with Dynamic Prompt Tuning",
Electronic Imaging 2025. Top-1 %, mean ± std over 3 splits where given. These are the
paper's figures, never results of this project.
"""
from __future__ import annotations

CITATION = "Liang et al., ZAR: Zero-Shot Action Recognition with Dynamic Prompt Tuning, EI 2025"

# Table 1: row key -> dataset -> (mean, std)
TABLE1 = {
    "vanilla": {"hmdb51": (40.8, 0.3), "ucf101": (63.2, 0.2), "k600": (59.8, 0.3)},
    "zar": {"hmdb51": (43.6, 0.7), "ucf101": (64.1, 0.9), "k600": (60.2, 0.4)},
    "zar_k400": {"hmdb51": (54.2, 0.8), "ucf101": (77.4, 0.8), "k600": (70.5, 0.4)},
}
# Rows of other methods, quoted from the paper as published.
TABLE1_QUOTED = {
    "ViFi-CLIP B/16 (WIT + K400)": {"hmdb51": (51.3, 0.6), "ucf101": (76.8, 0.7), "k600": (71.2, 1.0)},
}

# Table 2: dataset -> (base, novel, HM)
TABLE2 = {"k400": (75.2, 60.7, 67.2), "hmdb51": (75.2, 55.2, 63.7), "ucf101": (91.3, 67.2, 77.4)}

# Table 3: confidence ratio (%) -> dataset -> top-1
_T3_RATIOS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
TABLE3 = {
    "hmdb51": dict(zip(_T3_RATIOS, (53.94, 53.88, 54.07, 53.94, 53.81, 54.01, 54.14, 54.17, 54.14, 54.07))),
    "ucf101": dict(zip(_T3_RATIOS, (76.84, 77.26, 77.34, 77.34, 77.37, 77.37, 77.42, 77.37, 77.29, 77.10))),
}

# Table 4 (HMDB51): sampling rates kept -> top-1
TABLE4 = {(1, 2, 4, 8): 54.2, (1, 2, 4): 53.6, (1, 2): 52.1, (1,): 51.5}

# Table 5 (HMDB51): number of crops -> top-1
TABLE5 = {1: 53.6, 3: 54.2, 5: 52.0, 9: 51.8}
