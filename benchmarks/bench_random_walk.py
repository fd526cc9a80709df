"""Benchmark: the random walk of one VOC-sized image (500×375 → a 63×47 grid at stride 8), dense beside sparse.

    python benchmarks/bench_random_walk.py [--height 375] [--width 500] [--logt 8] [--device cpu]

Prints JSON. Each walk runs in its own process: the transition matrix of random radius-5 affinities, then
``wsss.infer.random_walk.walk_dense`` (``logt`` squarings of the n×n matrix, psa) or ``walk_sparse``
(``2^logt`` sparse products), of 21 score channels, fp32. Reported: seconds, the peak memory the walk adds
(RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA) and the largest difference between the two walks.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from wsss.infer.random_walk import transition_matrix, walk_dense, walk_sparse
from wsss.nets.affinity import pair_offsets


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def one_walk(kind: str, height: int, width: int, logt: int, device: torch.device) -> dict:
    """Seconds and added peak memory of one walk (this process runs one kind only)."""
    generator = torch.Generator().manual_seed(0)
    grid = (-(-height // 8), -(-width // 8))
    affinity = torch.rand(len(pair_offsets(5)), *grid, generator=generator).to(device) ** 0.2
    scores = torch.rand(21, grid[0] * grid[1], generator=generator).to(device)
    transition = transition_matrix(affinity, 5, beta=8)
    walk = {"dense": walk_dense, "sparse": walk_sparse}[kind]
    small = transition_matrix(torch.rand(len(pair_offsets(5)), 4, 4).to(device), 5, beta=8)
    walk(small, scores[:, :16], 1)   # warm-up on a 4×4 grid: the kernels, not the memory of the full walk
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_mb(device)
    start = time.perf_counter()
    walked = walk(transition, scores, logt)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    torch.save(walked.cpu(), f"/tmp/bench_random_walk_{kind}.pt")
    return {"seconds": round(seconds, 3), "peak_added_mb": round(peak_mb(device) - before, 1),
            "nodes": grid[0] * grid[1], "grid": list(grid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--logt", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=("dense", "sparse"), help=argparse.SUPPRESS)  # one walk, in a child
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.only:
        print(json.dumps(one_walk(args.only, args.height, args.width, args.logt, device)))
        return
    report = {"image": [args.height, args.width], "logt": args.logt, "device": args.device,
              "threads": torch.get_num_threads(), "precision": "fp32", "load_average_before": round(os.getloadavg()[0], 2)}
    for kind in ("dense", "sparse"):
        done = subprocess.run([sys.executable, __file__, "--only", kind, "--height", str(args.height), "--width",
                               str(args.width), "--logt", str(args.logt), "--device", args.device],
                              capture_output=True, text=True, check=True)
        report[kind] = json.loads(done.stdout)
    dense, sparse = (torch.load(f"/tmp/bench_random_walk_{kind}.pt") for kind in ("dense", "sparse"))
    report["max_abs_difference"] = float((dense - sparse).abs().max())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
