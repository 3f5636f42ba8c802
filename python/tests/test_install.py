"""`pip install touchpoint[spark]` into a clean venv, as a user installs it: only what the
package's metadata brings (no test requirements), then the Spark job's own entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SAMPLE, assert_tables_equal, cli_tables

from touchpoint import publish

WHEEL = os.environ.get("TOUCHPOINT_WHEEL")


@pytest.mark.skipif(not WHEEL, reason="cargo xtask test passes the wheel it built (TOUCHPOINT_WHEEL)")
def test_pip_install_spark_extra_runs_the_job_in_a_clean_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", f"{WHEEL}[spark]"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    pipeline = tmp_path / "nightly.toml"
    pipeline.write_text(
        f'version = 1\n[input]\nevents = "{SAMPLE}"\n[models]\n'
        'run = ["first_touch", "linear", "markov", "markov_journey"]\nbootstrap_replicates = 10\n'
    )
    out = tmp_path / "out"
    # The entry point as installed, with nothing of the test venv on its path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "VIRTUAL_ENV")}
    job = subprocess.run([str(venv / "bin/touchpoint-spark"), str(pipeline), "--out", str(out)],
                         capture_output=True, text=True, env=env)
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-4000:]
    assert json.loads(job.stdout.strip().splitlines()[-1])["status"] == "ok"
    want = cli_tables(SAMPLE, tmp_path / "cli", {"models": {
        "run": ["first_touch", "linear", "markov", "markov_journey"], "bootstrap_replicates": 10}})
    got = publish.read(str(out))  # the undated run: out/_manifest/latest/_manifest.json
    for name in ("channel_attribution", "channel_roles", "markov_removal_effects"):
        assert_tables_equal(got[name], want[name], name, rel=1e-9)
    # path_summary, written in parts by the executors, read back through the manifest.
    assert_tables_equal(got["path_summary"], want["path_summary"], "path_summary", rel=1e-9)
