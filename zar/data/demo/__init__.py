"""The synthetic demo dataset: coloured shapes that move, in the layouts of the real data.

Every class is a combination of four factors, named in plain words, e.g.
``red circle moving left quickly``: a colour, a shape, a direction and a speed. A clip shows
one shape of that colour gliding across a noisy background with a fading trail behind it,
so each single frame shows the direction (the trail's side) and the speed (the trail's
length); a fast shape also sweeps across much more of the frame within a short window.

The roles mirror the paper's datasets:

- ``k400``: the fine-tuning classes (train and val videos), with a base-to-novel split;
- ``hmdb51``, ``ucf101``, ``k600``: zero-shot test sets of classes that are NOT fine-tuning
  classes but unseen combinations of words that all appear in fine-tuning classes; three
  splits each, every split a different subset of the role's class pool (like K600's
  160 of 220); ``hmdb51`` and ``ucf101`` also get base-to-novel lists.

``zar splits build --builder demo`` writes the split files (the same layout as ``splits/``);
``zar download --source synthetic`` renders one role's videos (already in the normalised
form that `zar decode` writes, so decoding them is bookkeeping only).
Everything follows from the config and its seed: same config, same bytes.
"""
from __future__ import annotations

from zar.data.demo.settings import DIRECTIONS, SHAPES, DemoConfig, config_from_dict, load_config, validate
from zar.data.demo.design import Combo, Video, class_name, combo_text, design_classes, pick_balanced, plan_videos
from zar.data.demo.files import (build_split_files, write_splits,
                            write_videos)
from zar.data.demo.render import render_clip, video_seed, write_video

__all__ = ["DIRECTIONS", "SHAPES", "Combo", "DemoConfig", "Video",
           "build_split_files", "class_name", "combo_text", "config_from_dict", "design_classes", "load_config",
           "pick_balanced", "plan_videos", "render_clip", "validate", "video_seed", "write_splits", "write_video",
           "write_videos"]
