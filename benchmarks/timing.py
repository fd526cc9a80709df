"""Timing helpers of the benchmarks: callables timed in turns, their peak memory, the machine they ran on, and
the rows of the ratio table that ``benchmarks/run.py`` prints.

A row compares this project with the official code on one job, measured in the same process tree and the same
run: ``speedup`` is the official median over ours (above 1: ours is faster).
"""

from __future__ import annotations

import functools
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from wsss.runtime import cpu_has_bf16

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _status_mb(key: str) -> float:
    return int(re.search(rf"^{key}:\s+(\d+)", STATUS.read_text(), re.M).group(1)) / 1024


def measured(work: Callable) -> tuple[float, float | None]:
    """Seconds of ``work()`` and the peak resident memory it added to this process (MB), from the kernel's
    high-water mark reset before the call (``/proc/self/clear_refs``). When ``work`` returns a number, that is
    its peak instead (a whole process's, see :func:`process`)."""
    try:
        CLEAR_REFS.write_text("5")
        before = _status_mb("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    returned = work()
    seconds = time.perf_counter() - start
    if isinstance(returned, (int, float)):
        return seconds, float(returned)
    return seconds, None if before is None else max(_status_mb("VmHWM") - before, 0.0)


def in_turns(works: dict[str, Callable], repeats: int = 3, warmups: int = 1) -> dict[str, dict]:
    """Each callable timed in turns (``warmups`` untimed rounds, then ``repeats`` timed ones), so that a change of
    load during the run hits every one alike: median seconds, every timed run, the largest peak memory (MB)."""
    runs = {name: [] for name in works}
    peaks = {name: [] for name in works}
    for round_ in range(warmups + repeats):
        for name, work in works.items():
            seconds, peak = measured(work)
            if round_ >= warmups:
                runs[name].append(seconds)
                peaks[name].append(peak)
    return {name: {"median_s": statistics.median(times), "runs_s": [round(t, 4) for t in times],
                   "peak_mb": None if None in peaks[name] else round(max(peaks[name]), 1)}
            for name, times in runs.items()}


def process(command: list[str], **kwargs) -> Callable[[], float]:
    """A callable that runs ``command`` to completion and returns its peak resident memory in MB (the largest
    of the process and the children it waited for, from ``wait4``)."""
    def run() -> float:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise RuntimeError(f"{command[:3]} failed ({child.returncode}): {child.stderr.read().decode()[-2000:]}")
        child.stderr.close()
        return usage.ru_maxrss / 1024
    return run


def machine() -> dict:
    """The CPU (model, the flags that decide the kernels), torch's threads and kernel level, the load."""
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if os.path.exists("/usr/bin/lscpu") else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    return {"cpu": fields.get("Model name", platform.processor()).strip(), "cores": os.cpu_count(),
            "flags": [flag for flag in INTERESTING_FLAGS if flag in flags], "bf16": cpu_has_bf16(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "load_average": round(os.getloadavg()[0], 2)}


def bf16_target(avx512: float = 2.5, amx: float = 4.0) -> float:
    """The speed-up goal of a FLOP-bound network row: higher where the CPU has native bf16 (AMX above AVX-512
    bf16), 1.0 (never slower) in fp32."""
    flags = set(machine()["flags"])
    return amx if "amx_bf16" in flags else avx512 if cpu_has_bf16() else 1.0


@functools.lru_cache(maxsize=None)
def matmul_rate(precision: str, size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a ``size``² matmul in ``precision``, the fastest of ``repeats`` (the rate this CPU reaches: the
    denominator of a network row's FLOP bound); measured once per process."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = min(in_turns({"matmul": lambda: a @ b}, repeats)["matmul"]["runs_s"])
    return 2 * size ** 3 / seconds / 1e9


def counted_gflop(work) -> float:
    """GFLOP that ``work()`` runs (torch's FLOP counter: convolutions and matmuls, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops() / 1e9


def bound_note(gflop: float, precision: str) -> str:
    rate = matmul_rate("bf16" if precision.startswith("bf16") else "fp32")
    return f"{gflop:.0f} GFLOP at the {rate:.0f} GFLOP/s of a {precision.split()[0]} matmul: bound {gflop / rate:.3g} s"


def row(benchmark: str, unit_count: float, unit: str, ours: dict, official: dict, target: float,
        precision: str, note: str = "") -> dict:
    """One line of the ratio table: ``unit_count`` units (images, steps) per timed call of each side."""
    return {"benchmark": benchmark, "unit": unit, "precision": precision,
            "ours_s_per_unit": round(ours["median_s"] / unit_count, 4),
            "official_s_per_unit": round(official["median_s"] / unit_count, 4),
            "speedup": round(official["median_s"] / ours["median_s"], 2), "target": target,
            "ours_peak_mb": ours["peak_mb"], "official_peak_mb": official["peak_mb"],
            "runs": len(ours["runs_s"]), "note": note}


def markdown(rows: list[dict], host: dict) -> str:
    """The ratio table, with the machine it ran on above it."""
    lines = [f"CPU: {host['cpu']}, {host['cores']} cores, flags {' '.join(host['flags']) or 'none of interest'}; "
             f"torch {host['torch']} ({host['torch_cpu_capability']}, {host['torch_threads']} threads); "
             f"load average {host['load_average']} at the start."
             + ("".join(f" A 2048² {precision} matmul: {rate} GFLOP/s." for precision, rate in host["matmul_gflops"].items())
                if "matmul_gflops" in host else ""), "",
             "| benchmark | precision (ours) | ours | official | speed-up | target | met | peak MB ours / official | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = " / ".join("—" if p is None else f"{p:.0f}" for p in (r["ours_peak_mb"], r["official_peak_mb"]))
        met = "yes" if r["speedup"] >= r["target"] else "**no**"
        lines.append(f"| {r['benchmark']} | {r['precision']} | {r['ours_s_per_unit']:.4g} s/{r['unit']} | "
                     f"{r['official_s_per_unit']:.4g} s/{r['unit']} | {r['speedup']:.2f}× | ≥ {r['target']}× | {met} | "
                     f"{peak} | {r['note']} |")
    return "\n".join(lines)
