"""Every benchmark of the project, as one JSON document on stdout (not part of the test suite).

    python benchmarks/run.py [--seam-dir PATH_TO_SEAM_CHECKOUT] [--ldf-dir PATH_TO_LDF_CHECKOUT]

Runs each ``benchmarks/bench_*.py`` in its own process (so one's imports and threads do not
colour another's figures) and merges their JSON under the script's name.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seam-dir", type=Path, help="a checkout of YudeWang/SEAM, to time its evaluation.py beside ours")
    parser.add_argument("--ldf-dir", type=Path, help="a checkout of weijun88/LDF, to time its utils.py and net.py beside ours")
    args = parser.parse_args()
    extra = {"bench_evaluate.py": ["--seam-dir", str(args.seam_dir)] if args.seam_dir else [],
             "bench_ldf.py": ["--ldf-dir", str(args.ldf_dir)] if args.ldf_dir else []}
    report = {}
    for script in sorted(HERE.glob("bench_*.py")):
        done = subprocess.run([sys.executable, str(script), *extra.get(script.name, [])],
                              capture_output=True, text=True, check=True)
        report[script.stem.removeprefix("bench_")] = json.loads(done.stdout)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
