"""Shared set-up of the Python tests: the CLI binary they compare against, generated event
logs, and a local Spark session (a JDK is installed from Debian when missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample-data" / "events.parquet"


def read_plain(path: Path) -> pa.Table:
    """A Parquet file with string views (Polars writes them) as plain strings, which every
    pyarrow compute kernel takes."""
    t = pq.read_table(path)
    return t.cast(pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type) for f in t.schema]))


def cli_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "touchpoint-target"))
    exe = target / "release" / "touchpoint"
    assert exe.exists(), f"{exe} is missing: run `cargo xtask test`, which builds it first"
    return exe


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(cli_binary()), *args], capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def sets(sections: dict) -> list[str]:
    """The CLI's `--set section.key=value` flags for the Python keyword sections."""
    out = []
    for section, values in sections.items():
        for key, value in values.items():
            out += ["--set", f"{section}.{key}={json.dumps(value)}"]
    return out


def cli_tables(events: Path, out: Path, sections: dict) -> dict[str, pa.Table]:
    """Every table `touchpoint attribute` writes: `out/<table>.parquet`, or with a window
    `out/<table>/run_date=<date>/part-0.parquet`."""
    run_cli("attribute", "--events", str(events), "--out", str(out), "-q", *sets(sections))
    plain = {f.stem: pq.read_table(f) for f in sorted(out.glob("*.parquet"))}
    dated = {f.parent.parent.name: pq.read_table(f) for f in sorted(out.glob("*/run_date=*/part-0.parquet"))}
    return plain or dated


def assert_tables_equal(got: pa.Table, want: pa.Table, name: str, rel: float = 0.0) -> None:
    """Same columns, same rows in the same order; floats to `rel` relative (0: exact)."""
    assert got.column_names == want.column_names, name
    assert got.num_rows == want.num_rows, name
    for col in want.column_names:
        g, w = got.column(col).to_pylist(), want.column(col).to_pylist()
        for i, (a, b) in enumerate(zip(g, w)):
            if isinstance(b, float) and isinstance(a, float):
                assert abs(a - b) <= rel * max(1.0, abs(b)), f"{name}.{col}[{i}]: {a} vs {b}"
            else:
                assert a == b, f"{name}.{col}[{i}]: {a!r} vs {b!r}"


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    """A generated log of 3,000 users (~30,000 events), written by the CLI's generator."""
    path = tmp_path_factory.mktemp("gen") / "events.parquet"
    run_cli("generate", "--users", "3000", "--seed", "7", "--out", str(path), "-q")
    return path


def _java() -> None:
    if shutil.which("java"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "openjdk-17-jre-headless"]
    if subprocess.run(apt, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(apt, env=env, check=True)


#: The variable the Spark tests' pseudonymization key is in (set before the JVM starts).
PSEUDONYM_KEY_ENV = "TOUCHPOINT_TEST_PSEUDONYM_KEY"


@pytest.fixture(scope="session")
def spark():
    """PySpark in local mode, small: local[2], 1 GB, 3 shuffle partitions, and Arrow batches
    of 64 rows so users straddle batch boundaries."""
    _java()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    # The executors' pseudonymization key: they inherit the environment the JVM starts with.
    os.environ[PSEUDONYM_KEY_ENV] = "the executors' test key"
    from pyspark.sql import SparkSession

    s = (
        SparkSession.builder.master("local[2]")
        .appName("touchpoint-tests")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def s3():
    """An S3-compatible server on 127.0.0.1 (moto, in a thread) with a bucket `bucket`, and
    the standard AWS variables pointing at it for this process (dummy keys: moto takes any).
    Yields the endpoint URL."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bucket")
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
