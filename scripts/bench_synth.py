"""Benchmark: median wall time of a full aigw synth (all stacks, all three packs) against a one-bucket app.

    python scripts/bench_synth.py [--runs 5] [--env dev]

Both run as fresh processes, alternated in one session, so machine noise hits both alike; the ratio
is the figure to compare across changes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE_BUCKET_APP = """
from aws_cdk import App, Stack, aws_s3 as s3
app = App()
s3.Bucket(Stack(app, "Baseline"), "Bucket")
app.synth()
"""


def timed(command: list[str], context: dict[str, object]) -> float:
    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as outdir:
        env = {**os.environ, "CDK_OUTDIR": outdir, "CDK_CONTEXT_JSON": json.dumps(context)}
        env.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--env", default="dev")
    args = parser.parse_args()
    flags = json.loads((ROOT / "cdk.json").read_text())["context"]
    aigw, baseline = [], []
    for _ in range(args.runs):
        aigw.append(timed([sys.executable, "app.py"], {**flags, "env": args.env}))
        baseline.append(timed([sys.executable, "-c", ONE_BUCKET_APP], flags))
    aigw_median, baseline_median = statistics.median(aigw), statistics.median(baseline)
    for label, value in (
        ("runs per app", f"{args.runs}"),
        (f"aigw full synth ({args.env}, 3 packs), median", f"{aigw_median:.2f} s"),
        ("one-bucket CDK app, median", f"{baseline_median:.2f} s"),
        ("ratio aigw / one-bucket", f"{aigw_median / baseline_median:.2f}"),
    ):
        print(f"{label:<42} {value}")


if __name__ == "__main__":
    main()
