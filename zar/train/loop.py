"""The fine-tuning loop (docs/protocol.md §4): one process per device, DDP when there are several.

Loss: cross-entropy between the video embedding (mean of the frame embeddings,
L2-normalised) and the L2-normalised text embeddings of all training-class prompts,
scaled by the trainable ``exp(logit_scale)``, against smoothed and mixed soft targets.
Trained: every parameter but the token-embedding table, on timm's cosine schedule, both
exactly as ViFi-CLIP's trainer does (``trainable_parameters``, ``make_scheduler``).
The global batch is ``micro x processes x accumulation``; each micro-batch's summed loss
is scaled by ``processes / batch`` so that DDP's gradient average gives the mean over the
global batch, whatever the split.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from zar.model.backbone import autocast
from zar.train import checkpoint
from zar.train.augment import mix_batch, soft_cross_entropy, soft_targets
from zar.train.data import (Layout, StepBatches, TrainClips, class_prompts, collate, load_training_list,
                            steps_per_epoch, worker_init)
from zar.train.recipe import Recipe
from zar.core.errors import UserError
from zar.core.files import atomic_write_text, sha256_file, stable_int, write_json
from zar.core.progress import progress
from zar.core.provenance import provenance

log = logging.getLogger(__name__)

EXIT_STOPPED = 75  # stopped by a signal after writing a state file: rerun with --resume
# recipe keys that do not change the result (they may differ on resume)
RUN_CONTROL = {"micro_batch", "num_workers", "log_every", "save_every", "decode_timeout", "name", "cache_frames"}


@dataclass
class TrainJob:
    videos: Path
    classes: Path
    root: Path
    out: Path
    recipe: Recipe
    backbone: str = "vitb16_openai"
    ext: str | None = None
    resume: bool = False
    device: str | None = None  # None: cuda:LOCAL_RANK if CUDA is available, else cpu
    stop_after_epoch: int | None = None  # stop cleanly after this many epochs (state written)
    stop_after_steps: int | None = None  # same, after this many optimizer steps


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device  # this process's (cuda:LOCAL_RANK under torchrun)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None) -> Dist:
    """Join the process group torchrun set up (nccl on CUDA, gloo on the CPU), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available here")
    dev = torch.device(f"cuda:{local}" if use_cuda and device in (None, "cuda") else (device or "cpu"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


class VideoCLIP(torch.nn.Module):
    """Logits of clips (B, T, 3, H, W) against class prompt tokens (K, L)."""

    def __init__(self, clip: torch.nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, clips: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        frames = self.clip.encode_image(clips.flatten(0, 1))
        video = F.normalize(frames.float().view(b, t, -1).mean(dim=1), dim=-1)
        text = F.normalize(self.clip.encode_text(tokens).float(), dim=-1)
        return self.clip.logit_scale.exp() * video @ text.t()


def frozen_parameters(clip: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters ViFi-CLIP does not train: the token-embedding table.

    ViFi-CLIP computes its prompts' token embeddings once into a buffer, so the word table
    never changes; both towers, the projections, the positional embeddings and
    ``logit_scale`` are trained (docs/protocol.md §4).
    """
    owner = getattr(clip, "text", None) if getattr(clip, "token_embedding", None) is None else clip
    table = getattr(owner, "token_embedding", None)
    if table is None:
        raise UserError(f"{type(clip).__name__}: no token embedding table found to freeze")
    return list(table.parameters())


def trainable_parameters(clip: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Every parameter but the token-embedding table (which is set to ``requires_grad=False``)."""
    frozen = {id(p) for p in frozen_parameters(clip)}
    for p in clip.parameters():
        p.requires_grad_(id(p) not in frozen)
    return [p for p in clip.parameters() if p.requires_grad]


def make_scheduler(opt: torch.optim.Optimizer, total: int, warmup: int, recipe: Recipe):
    """ViFi-CLIP's schedule: timm's cosine over all ``total`` optimizer steps, to lr * min_lr_ratio,
    after a linear warm-up from 0 over ``warmup`` steps (the cosine does not restart after it)."""
    from timm.scheduler import CosineLRScheduler

    return CosineLRScheduler(opt, t_initial=total, lr_min=recipe.lr * recipe.min_lr_ratio, warmup_lr_init=0.0,
                             warmup_t=warmup, cycle_limit=1, t_in_epochs=False)


def set_step_lr(scheduler, step: int) -> float:
    """Put the learning rate of optimizer step ``step`` (0-based) into the optimizer; return it.

    As in ViFi-CLIP's trainer, the scheduler is updated after each step with that step's
    index, so step ``s`` runs at the schedule's value for ``s - 1`` and step 0 at the value
    the scheduler starts with (``warmup_lr_init`` = 0 when there is a warm-up).
    """
    if step == 0:
        scheduler.update_groups(scheduler.warmup_lr_init if scheduler.warmup_t else scheduler.base_values)
    else:
        scheduler.step_update(step - 1)
    return float(scheduler.optimizer.param_groups[0]["lr"])


def _gather(d: Dist, obj: Any) -> list[Any]:
    if d.world == 1:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def _fingerprint(job: TrainJob, recipe: Recipe, spec) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    return {
        "recipe": {k: v for k, v in recipe.to_dict().items() if k not in RUN_CONTROL},
        "videos_sha256": sha256_file(job.videos),
        "classes_sha256": sha256_file(job.classes),
        "backbone": spec.to_dict(),
        "ext": job.ext,
    }


def _uses_quick_gelu(model: torch.nn.Module) -> bool:
    from open_clip.transformer import QuickGELU

    return any(isinstance(m, QuickGELU) for m in model.modules())


class _StopFlag:
    """SIGTERM / SIGUSR1 (SLURM's warning before a time limit or preemption) ask for a clean stop."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, _frame) -> None:
        log.warning("signal %d: writing a state file, then stopping", signum)
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _add_skipped(into: dict[str, dict], vid: str, reason: str, count: int = 1) -> None:
    """Count ``count`` more replacements of the undecodable video ``vid`` (its first reason kept)."""
    into.setdefault(vid, {"reason": reason, "count": 0})["count"] += count


def train(job: TrainJob) -> int:
    d = init_distributed(job.device)
    try:
        return _train(job, d)
    finally:
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _check_out(job: TrainJob) -> str | None:
    """'done' if the run already finished; raise if ``out`` holds a run and --resume was not given."""
    out = Path(job.out)
    if (out / "model.json").is_file() and (out / "model.safetensors").is_file() and (out / "train_config.json").is_file():
        if job.resume:
            return "done"
        raise UserError(f"{out}: holds a finished training run; choose another --out")
    if checkpoint.list_states(out) and not job.resume:
        raise UserError(f"{out}: holds an unfinished training run; pass --resume to continue it or choose another --out")
    return None


def _train(job: TrainJob, d: Dist) -> int:
    if _check_out(job) == "done":
        log.info("%s: training already finished; nothing to do", job.out)
        return 0
    run = _Run(job, d)
    run.resume()
    run.write_config()
    return run.train()


class _Run:
    """One training run: ``__init__`` sets it up (lists, model, optimizer, schedule), ``resume``
    loads the last state file, ``train`` runs the epochs (``step`` each step, ``save`` the
    state files), ``finish`` writes the backbone."""

    def __init__(self, job: TrainJob, d: Dist) -> None:
        from zar.model.backbone import build_model, parse_spec, register_configs

        self.job, self.d, self.recipe, self.out = job, d, job.recipe, Path(job.out)
        recipe = self.recipe
        self.classes, self.items = load_training_list(job.videos, job.classes, job.root, job.ext)
        self.spec = parse_spec(job.backbone)
        self.layout = Layout.make(recipe.batch_size, recipe.micro_batch, d.world, recipe.mixing)
        self.epoch_steps = steps_per_epoch(len(self.items), recipe.batch_size)
        if self.epoch_steps == 0:
            raise UserError(f"{job.videos}: {len(self.items)} videos, fewer than one global batch of {recipe.batch_size}")
        self.total = self.epoch_steps * recipe.epochs
        self.warmup = int(recipe.warmup_epochs * self.epoch_steps)  # as ViFi-CLIP: int(WARMUP_EPOCHS * steps per epoch)
        self.fingerprint = _fingerprint(job, recipe, self.spec)

        # the same initial weights on every process, then a different RNG stream per process
        torch.manual_seed(stable_int(recipe.seed, "init"))
        self.clip, self.pre = build_model(self.spec, d.device)
        rank_seed = stable_int(recipe.seed, "rank", d.rank)
        torch.manual_seed(rank_seed)
        np.random.seed(rank_seed % 2**32)
        random.seed(rank_seed)

        import open_clip

        register_configs()
        prompts = class_prompts(self.classes, recipe.prompt)
        self.tokens = open_clip.get_tokenizer(self.spec.arch)(prompts).to(d.device)
        if bool((self.tokens[:, -1] != 0).any()):
            log.warning("some class prompts fill the %d-token context and may be truncated", self.tokens.shape[1])
        self.clip.train()
        trained = trainable_parameters(self.clip)  # before DDP: it syncs exactly the parameters that need a gradient
        self.net: torch.nn.Module = VideoCLIP(self.clip)
        if d.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[d.device.index] if d.device.type == "cuda" else None, broadcast_buffers=False)
        self.opt = torch.optim.AdamW(trained, lr=recipe.lr, betas=tuple(recipe.betas), eps=recipe.eps,
                                     weight_decay=recipe.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=d.device.type == "cuda" and recipe.precision == "fp16")
        self.scheduler = make_scheduler(self.opt, self.total, self.warmup, recipe)
        self.start, self.skipped_base, self.skipped_local = 0, {}, {}

    def resume(self) -> None:
        """Continue from the last state file (with --resume), after checking it is this run's."""
        states = checkpoint.list_states(self.out) if self.job.resume else []
        if not states:
            if self.job.resume:
                log.info("%s: no state file yet; starting from the beginning", self.out)
            return
        _, path = states[-1]
        state = checkpoint.load_state(path)
        if state.get("fingerprint") != self.fingerprint:
            diff = sorted(k for k in self.fingerprint if state.get("fingerprint", {}).get(k) != self.fingerprint[k])
            raise UserError(f"{path}: the run was started with different settings ({', '.join(diff)}); "
                            "resume with the same recipe, lists and backbone, or choose another --out")
        self.clip.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.d.rank < len(state["rng"]):
            checkpoint.set_rng_state(state["rng"][self.d.rank])
        self.start, self.skipped_base = int(state["step"]), dict(state["skipped"])
        log.info("resuming from %s (step %d of %d)", path, self.start, self.total)

    def write_config(self) -> None:
        if not self.d.main:
            return
        job, recipe, layout = self.job, self.recipe, self.layout
        self.out.mkdir(parents=True, exist_ok=True)
        _truncate_log(self.out / "train_log.jsonl", self.start)
        write_json(self.out / "train_config.json", {
            "job": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(job).items()
                    if k != "recipe"},
            "recipe": recipe.to_dict(), "fingerprint": self.fingerprint,
            "layout": dataclasses.asdict(layout), "steps_per_epoch": self.epoch_steps, "total_steps": self.total,
            "warmup_steps": self.warmup, "n_videos": len(self.items), "n_classes": len(self.classes),
            "provenance": provenance()})
        log.info("training %d videos, %d classes, %d epochs x %d steps, global batch %d = %d x %d processes x %d",
                 len(self.items), len(self.classes), recipe.epochs, self.epoch_steps, layout.batch_size, layout.micro,
                 self.d.world, layout.accum)

    def save(self, step: int) -> None:
        """A state file at ``step`` (every process takes part: RNG states and skips are gathered)."""
        d, out = self.d, self.out
        rngs = _gather(d, checkpoint.rng_state())
        skipped = _total_skipped(self.skipped_base, _gather(d, self.skipped_local))
        if d.main:
            checkpoint.save_state(checkpoint.state_path(out, step), {
                "format": "zar-train-state/1", "step": step, "epoch_end": step % self.epoch_steps == 0,
                "model": {k: v.detach().cpu() for k, v in self.clip.state_dict().items()},
                "optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict(), "rng": rngs,
                "skipped": skipped, "fingerprint": self.fingerprint})
            checkpoint.prune_states(out, {s for s, _ in checkpoint.list_states(out) if s % self.epoch_steps == 0}
                                    | {step})
            log.info("state written at step %d", step)
        if d.world > 1:
            dist.barrier()

    def train(self) -> int:
        job, recipe, d, epoch_steps = self.job, self.recipe, self.d, self.epoch_steps
        dataset = TrainClips(self.items, recipe, self.pre.image_size, self.pre.mean, self.pre.std,
                             self.pre.interpolation)
        plan = StepBatches(len(self.items), self.layout, d.rank, recipe.seed)
        with _StopFlag() as stop, open(self.out / "train_log.jsonl", "a", encoding="utf-8") if d.main else \
                contextlib.nullcontext() as train_log, _loader(dataset, plan, recipe, d.device) as loader:
            for epoch in range(self.start // epoch_steps, recipe.epochs):
                first = self.start % epoch_steps if epoch == self.start // epoch_steps else 0
                plan.set_epoch(epoch, first)
                batches = iter(loader)
                steps = range(first, epoch_steps)
                for s in (progress(steps, total=len(steps), desc=f"epoch {epoch + 1}/{recipe.epochs}",
                                   every=recipe.log_every) if d.main else steps):
                    done = self.step(epoch, s, batches, stop, train_log)
                    if done is None:
                        return EXIT_STOPPED
                    by_steps = job.stop_after_steps is not None and done >= job.stop_after_steps
                    if (s + 1 == epoch_steps) or (recipe.save_every and done % recipe.save_every == 0) or by_steps:
                        self.save(done)
                    if by_steps and done < self.total:
                        log.warning("stopped at step %d of %d; rerun with --resume to continue", done, self.total)
                        return 0
                del batches
                if job.stop_after_epoch is not None and epoch + 1 >= job.stop_after_epoch and epoch + 1 < recipe.epochs:
                    log.warning("stopped after epoch %d of %d; rerun with --resume to continue", epoch + 1,
                                recipe.epochs)
                    return 0
        self.finish()
        return 0

    def step(self, epoch: int, s: int, batches, stop: "_StopFlag", train_log) -> int | None:
        """Optimizer step ``s`` of ``epoch``: the steps done after it, or None when a signal
        stopped the run (the step is dropped and the state before it written)."""
        d, recipe, layout = self.d, self.recipe, self.layout
        g = epoch * self.epoch_steps + s
        t0 = time.perf_counter()
        lr = set_step_lr(self.scheduler, g)
        loss_sum = torch.zeros((), device=d.device)
        step_skips: list = []
        for a in range(layout.accum):
            batch = next(batches)
            step_skips += batch["skipped"]
            clips = batch["clips"].to(d.device, non_blocking=True)
            y = soft_targets(batch["labels"].to(d.device), len(self.classes), recipe.label_smoothing)
            clips, y = mix_batch(clips, y, batch["positions"], recipe.seed, epoch, s, recipe)
            sync = d.world == 1 or a == layout.accum - 1
            with contextlib.nullcontext() if sync else self.net.no_sync():
                with autocast(d.device, recipe.precision):
                    logits = self.net(clips, self.tokens)
                per = soft_cross_entropy(logits, y)
                self.scaler.scale(per.sum() * (d.world / layout.batch_size)).backward()
            loss_sum += per.detach().sum()
        flags = torch.stack([loss_sum.float(), torch.tensor(float(stop.raised), device=d.device)])
        if d.world > 1:
            dist.all_reduce(flags)
        if float(flags[1]) > 0:
            # a signal: this step's clips may have been read while processes were being
            # stopped, so the step is dropped and the state is the one before it
            self.opt.zero_grad(set_to_none=True)
            self.save(g)
            log.warning("stopped by a signal before step %d of %d; rerun with --resume to continue", g + 1, self.total)
            return None
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.clip.logit_scale.clamp_(0.0, math.log(recipe.max_logit_scale))
        for vid, reason in step_skips:
            _add_skipped(self.skipped_local, vid, reason)
        done = g + 1
        if d.main:
            dt = time.perf_counter() - t0
            rec = {"step": done, "epoch": epoch + 1, "loss": float(flags[0]) / layout.batch_size,
                   "lr": lr, "logit_scale": float(self.clip.logit_scale.detach().exp()),
                   "clips_per_s": layout.batch_size / dt}
            train_log.write(json.dumps(rec) + "\n")
            train_log.flush()
            if done % recipe.log_every == 0 or done == self.total:
                log.info("step %d/%d epoch %d loss %.4f lr %.3g scale %.2f %.1f clips/s",
                         done, self.total, epoch + 1, rec["loss"], lr, rec["logit_scale"], rec["clips_per_s"])
        return done

    def finish(self) -> None:
        """The trained backbone (model.safetensors + model.json) with what it was trained on."""
        job, recipe = self.job, self.recipe
        skipped = _total_skipped(self.skipped_base, _gather(self.d, self.skipped_local))
        if not self.d.main:
            return
        meta = {
            "arch": self.spec.arch, "quick_gelu": _uses_quick_gelu(self.clip), "format": "zar-backbone/1",
            "preprocess": self.pre.to_dict(),
            "init": self.spec.to_dict(), "recipe": recipe.to_dict(), "epochs": recipe.epochs, "steps": self.total,
            "videos": {"path": str(job.videos), "sha256": self.fingerprint["videos_sha256"], "count": len(self.items)},
            "classes": {"path": str(job.classes), "sha256": self.fingerprint["classes_sha256"],
                        "count": len(self.classes)},
            "skipped": {"videos": len(skipped), "events": sum(e["count"] for e in skipped.values()),
                        "list": skipped},
            "provenance": provenance(),
        }
        checkpoint.write_backbone(self.out, self.clip.state_dict(), meta)
        if skipped:
            log.warning("%d undecodable videos were replaced during training (listed in %s)",
                        len(skipped), self.out / "model.json")
        log.info("wrote %s", self.out / "model.safetensors")


@contextlib.contextmanager
def _loader(dataset, plan, recipe: Recipe, device: torch.device):
    """The DataLoader of the run; its worker processes are stopped when the run ends, also on
    an error (they ignore SIGTERM, see ``worker_init``, so nothing else would stop them)."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=plan, num_workers=recipe.num_workers, collate_fn=collate,
        worker_init_fn=worker_init, pin_memory=device.type == "cuda", persistent_workers=recipe.num_workers > 0)
    try:
        yield loader
    finally:
        workers = getattr(loader, "_iterator", None)
        if workers is not None:
            workers._shutdown_workers()


def _total_skipped(base: dict[str, dict], per_rank: list[dict[str, dict]]) -> dict[str, dict]:
    total = {k: dict(v) for k, v in base.items()}
    for part in per_rank:
        for vid, e in part.items():
            _add_skipped(total, vid, e["reason"], e["count"])
    return dict(sorted(total.items()))


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past ``step`` (written by a run that stopped before its next state file)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    atomic_write_text(path, "".join(k + "\n" for k in keep))
