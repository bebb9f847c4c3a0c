"""Benchmark: median wall time of a full aigw synth (all stacks, all three packs) against a one-bucket app.

    python scripts/bench_synth.py [--runs 5] [--env dev]

Two cases, each against the one-bucket app synthesized the same way:

- repeat synth: into an outdir that already holds the previous synth, as `cdk synth` does into cdk.out
  (and CI with cdk.out cached); the gateway bundle's asset is there already, so it is not rebuilt. The
  goal (synth within 1.6x of the one-bucket app) is about this case: it is the synth people wait for.
- fresh outdir: into an empty outdir, as a clean CI checkout does; the gateway bundle is built (from the
  wheel cache, .bundle-cache, that `make install` fills).

Both apps get the context `cdk synth` gives them. Every run is a fresh process; the four kinds are
alternated in one session so machine noise hits them alike. The ratios are the figures to compare across
changes and machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.6  # issue 14: the full synth within 1.6x of the one-bucket app (the repeat case)

# What `cdk synth` (aws-cdk 2.1148, package.json) adds to cdk.json's context when it runs an app.
CLI_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": True,
    "aws:cdk:bundling-stacks": ["**"],
    "@aws-cdk/core:failSynthOnValidationErrors": False,
}

ONE_BUCKET_APP = """
from aws_cdk import App, Stack, aws_s3 as s3
app = App()
s3.Bucket(Stack(app, "Baseline"), "Bucket")
app.synth()
"""


def timed(command: list[str], context: dict[str, object], outdir: Path) -> float:
    env = {**os.environ, "CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps(context)}
    env.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--env", default="dev")
    args = parser.parse_args()
    flags = {**json.loads((ROOT / "cdk.json").read_text())["context"], **CLI_CONTEXT}
    apps = {
        "aigw": ([sys.executable, "app.py"], {**flags, "env": args.env}),
        "one-bucket": ([sys.executable, "-c", ONE_BUCKET_APP], flags),
    }
    times: dict[tuple[str, str], list[float]] = {(app, case): [] for app in apps for case in ("repeat", "fresh")}
    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as scratch:
        kept = {app: Path(scratch, f"{app}.out") for app in apps}
        for app, (command, context) in apps.items():
            timed(command, context, kept[app])  # primes the repeat case's outdir; not counted
        for run in range(args.runs):
            for app, (command, context) in apps.items():
                times[app, "repeat"].append(timed(command, context, kept[app]))
                fresh = Path(scratch, f"{app}.fresh{run}")
                times[app, "fresh"].append(timed(command, context, fresh))
                shutil.rmtree(fresh)
    median = {key: statistics.median(values) for key, values in times.items()}
    rows = [("runs per app and case", f"{args.runs}")]
    for case, label in (("repeat", "repeat synth (bundle reused)"), ("fresh", "fresh outdir (bundle built)")):
        ratio = median["aigw", case] / median["one-bucket", case]
        rows += [
            (f"{label}:", ""),
            (f"  aigw full synth ({args.env}, the whole gate), median", f"{median['aigw', case]:.2f} s"),
            ("  one-bucket CDK app, median", f"{median['one-bucket', case]:.2f} s"),
            ("  ratio aigw / one-bucket", f"{ratio:.2f}" + (f"  (goal <= {GOAL})" if case == "repeat" else "")),
        ]
    for label, value in rows:
        print(f"{label:<48} {value}")


if __name__ == "__main__":
    main()
