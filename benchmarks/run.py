"""Every benchmark of the project, and the table of speed-ups against the official code.

    python benchmarks/run.py [--seam-dir SEAM_CHECKOUT] [--ldf-dir LDF_CHECKOUT] [--sccam-dir SCCAM_CHECKOUT] \
        [--psa-dir PSA_CHECKOUT] [--out report.json] [--only official ...]

Runs each ``benchmarks/bench_*.py`` (or those of ``--only``) in its own process (so one's imports and threads do
not colour another's figures), merges their JSON under the script's name into ``--out``, and prints the rows
that the scripts measured beside the official code (their ``ratios``) as one Markdown table, with the CPU and its
2048² matmul rate in fp32 and (where native) bf16: their ratio caps the speed-up of a FLOP-bound row run in bf16
against official code in fp32.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from timing import machine, markdown, matmul_rate

HERE = Path(__file__).resolve().parent


def last_json(stdout: str) -> dict:
    """The JSON report a script prints last (the official code it runs may print lines before it)."""
    return json.loads(stdout if stdout.startswith("{") else stdout[stdout.rindex("\n{\n") + 1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seam-dir", type=Path, help="a checkout of YudeWang/SEAM (evaluation.py, crf_inference)")
    parser.add_argument("--ldf-dir", type=Path, help="a checkout of weijun88/LDF, to time its utils.py and net.py beside ours")
    parser.add_argument("--sccam-dir", type=Path, help="a checkout of Juliachang/SC-CAM (its k-means loop)")
    parser.add_argument("--psa-dir", type=Path, help="a checkout of jiwoon-ahn/psa (train_cls.py, infer_aff.py)")
    parser.add_argument("--out", type=Path, help="where to write every script's JSON (default: not written)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these scripts only (bench_NAME.py)")
    args = parser.parse_args()
    checkouts = {"seam": args.seam_dir, "ldf": args.ldf_dir, "sccam": args.sccam_dir, "psa": args.psa_dir}
    wanted = {"bench_evaluate.py": ["seam"], "bench_ldf.py": ["ldf"], "bench_official.py": ["seam", "sccam", "psa"]}
    host = machine()
    precisions = ("fp32", "bf16") if host["bf16"] else ("fp32",)
    host["matmul_gflops"] = {precision: round(matmul_rate(precision)) for precision in precisions}
    report, rows = {"machine": host}, []
    scripts = sorted(HERE.glob("bench_*.py"))
    for script in scripts if not args.only else [HERE / f"bench_{name}.py" for name in args.only]:
        extra = [item for name in wanted.get(script.name, []) if checkouts[name]
                 for item in (f"--{name}-dir", str(checkouts[name]))]
        done = subprocess.run([sys.executable, str(script), *extra], capture_output=True, text=True,
                              cwd=HERE.parent)   # the repository root: the scripts read its params.yaml
        if done.returncode:
            raise SystemExit(f"{script.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        report[script.stem.removeprefix("bench_")] = figures = last_json(done.stdout)
        rows += figures.get("ratios", [])
        if args.out:   # after every script: a later failure keeps what was measured
            args.out.write_text(json.dumps(report, indent=2))
    print(markdown(rows, host))


if __name__ == "__main__":
    main()
