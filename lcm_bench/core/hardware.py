"""Hardware entries (``cpu-fp32``, ``cuda-fp16`` ...): parsing, availability and a description of this machine."""

from __future__ import annotations

import os
import platform
import re

from lcm_bench.core.errors import UserError
from lcm_bench.core.spec import Hardware

DEVICES = ("cpu", "cuda", "mps")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
HARDWARE_PATTERN = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?-(fp32|fp16|bf16)$")


def parse_hardware(name: str, field: str = "hardware") -> Hardware:
    match = HARDWARE_PATTERN.match(str(name))
    if not match:
        raise UserError(
            f"{field}: '{name}' is not a hardware entry; use DEVICE-DTYPE with DEVICE in {list(DEVICES)} "
            f"(optionally cuda:N) and DTYPE in {list(DTYPES)}, e.g. cpu-fp32, cuda-fp16"
        )
    device, index, dtype = match.groups()
    return Hardware(name=name, device=f"{device}:{index}" if index else device, dtype=dtype)


def torch_dtype(hardware: Hardware):
    import torch

    return getattr(torch, DTYPES[hardware.dtype])


def unavailable_reason(hardware: Hardware) -> str | None:
    """Why this machine cannot run ``hardware`` (None when it can); torch is imported only for GPU entries. Every
    dtype runs on the CPU (torch has fp16 and bf16 CPU kernels); a kernel a model lacks there fails its cell alone,
    which is skipped with the reason."""
    kind = hardware.device.split(":")[0]
    if kind == "cpu":
        return None
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        index = int(hardware.device.split(":")[1]) if ":" in hardware.device else 0
        if index >= torch.cuda.device_count():
            return f"cuda:{index} absent ({torch.cuda.device_count()} CUDA devices)"
        if hardware.dtype == "bf16" and not torch.cuda.is_bf16_supported():
            return "this GPU does not support bf16"
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "MPS is not available on this machine"
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Describes the machine, like pytest-benchmark's ``machine_info``."""
    import torch

    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = {
            "version": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        }
    return info


def pin_threads(requested: int | None = None) -> int:
    """Set torch's intra-op thread count and return it: ``requested``, else ``$LCM_BENCH_THREADS``, else torch's
    default shared among the processes of this machine (``$LOCAL_WORLD_SIZE`` under torchrun). CPU results depend
    on it at the last bit, so every chunk records it. Torch is told only a count it does not already have:
    ``torch.set_num_threads`` also turns MKL's dynamic choice of threads off (``mkl_set_dynamic(0)`` in ATen), which
    made the embedded teacher's batches about a tenth slower on 2 cores (``benchmarks/whole_run.py``)."""
    import torch

    if requested is None and os.environ.get("LCM_BENCH_THREADS"):
        text = os.environ["LCM_BENCH_THREADS"]
        if not text.isdigit() or int(text) < 1:
            raise UserError(f"$LCM_BENCH_THREADS: expected an integer >= 1, got '{text}'")
        requested = int(text)
    if requested is None:
        local = os.environ.get("LOCAL_WORLD_SIZE", "1")
        requested = max(1, torch.get_num_threads() // (int(local) if local.isdigit() and int(local) > 0 else 1))
    if requested < 1:
        raise UserError(f"--threads: expected an integer >= 1, got {requested}")
    if torch.get_num_threads() != requested:
        torch.set_num_threads(requested)
    return requested
