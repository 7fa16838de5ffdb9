"""What the benchmarks measure of the device: its matrix rate, the image tower alone, peak
memory, a job's start-up; and the synchronisation that makes a timer honest on CUDA."""
from __future__ import annotations

import resource
import subprocess
import sys
import time

import torch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matrix_rate(device: str, dtype: torch.dtype) -> float:
    """Measured TFLOP/s of a large ``dtype`` matmul on ``device``."""
    n, reps = (8192, 20) if device.startswith("cuda") else (1024, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12


def compute_dtype(device: str, precision: str) -> torch.dtype:
    """What the image tower's matmuls run in: bf16 on CUDA (autocast) or with the bf16 tower, else fp32."""
    return torch.bfloat16 if device.startswith("cuda") or precision == "bf16" else torch.float32


def tower_rate(enc, images: torch.Tensor, reps: int) -> tuple[float, torch.Tensor]:
    """Images/s of ``enc``'s image tower alone on ``images`` already on the device (no reading,
    no copies, no gathering: the ceiling of the encode stage), the median of ``reps`` calls
    after a warm-up; and the features of the warm-up call."""
    device = str(enc.device)
    out = enc.encode_batch(images)  # warm-up: kernels, casts
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        enc.encode_batch(images)
        sync(device)
        times.append(time.perf_counter() - t0)
    return images.shape[0] / sorted(times)[len(times) // 2], out


def random_images(n: int, size: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g).to(device)


def startup_seconds(backbone: str) -> float:
    """Wall time of a fresh process that does what a `zar tune` job does before its first
    video: import the verb and build the model."""
    code = ("import zar.jobs.tune, zar.method.encoder; from zar.model.backbone import build_model; "
            f"build_model({backbone!r})")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def peak_memory(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB on the GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB resident (this process)"
