"""Device and precision, picked at run time: CUDA or CPU; fp16 AMP on CUDA, bf16 autocast where the CPU has it.

On CPUs with AMX / AVX-512 bf16, ``torch.autocast("cpu", dtype=torch.bfloat16)`` with channels-last
runs ResNet inference about 3× faster than fp32 (torchvision ResNet-50 at 352², batch 1, on a 2-core AMX Xeon:
0.107 s fp32, 0.034 s bf16).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision a stage computes."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        """The autocast context of this precision (a no-op for fp32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def channels_last(self) -> bool:
        """Channels-last memory format pays off with bf16/fp16 kernels (oneDNN, cuDNN)."""
        return self.precision != "fp32" or self.device.type == "cuda"

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def prepare_inference(self, module: torch.nn.Module) -> torch.nn.Module:
        """:meth:`prepare` for inference: eval mode, BN folded into the conv before it, and in bf16 on a CPU the
        weights cast to bf16, so that autocast casts no weight per call (LDF's forward at 352²: 0.102 s → 0.093 s
        on an AVX-512 bf16 EPYC, benchmarks/README.md). Outputs may then be bf16."""
        from wsss.nets.base import fold_batchnorm

        module = fold_batchnorm(module)
        if self.precision == "bf16" and self.device.type == "cpu":
            module = module.to(torch.bfloat16)
        return self.prepare(module)

    def batch(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(self.device, non_blocking=True)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last and tensor.dim() == 4 else tensor


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AMX or AVX-512 bf16), per oneDNN's ISA detection."""
    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return False
    if isa in ("AVX512", "AMX") or "AMX" in isa:
        return _cpuinfo_has(("avx512_bf16", "amx_bf16"))
    return False


def _cpuinfo_has(flags: tuple[str, ...]) -> bool:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(flag in text for flag in flags)


def pick_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """Resolve ``runtime.device`` / ``runtime.precision`` (``auto``: the fastest the hardware supports)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("runtime.device is cuda but no CUDA device is available")
    if precision == "auto":
        precision = "fp16" if device == "cuda" else ("bf16" if cpu_has_bf16() else "fp32")
    if precision == "fp16" and device != "cuda":
        raise ValueError("runtime.precision fp16 (AMP) needs CUDA; use bf16 or fp32 on CPU")
    if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("runtime.precision bf16 is not supported by this CUDA device; use fp16 or fp32")
    return Runtime(torch.device(device), precision)
