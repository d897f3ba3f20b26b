"""A team's shared state backend: the dev stack against an S3-compatible bucket (moto's server, the
way `pulumi login s3://...` reaches MinIO or Ceph), and a second `up` of the same stack at the same
time is refused by the backend's lock instead of corrupting the state."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import httpx
import pytest
from conftest import Emulator, free_port, start_emulator
from pulumi_cli import PulumiProject

from metronome_iac.catalog import load_stack

BUCKET = "team-pulumi-state"
AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://{endpoint}/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    boto3.client("s3", endpoint_url=f"http://{endpoint}", **_boto_auth()).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


def _boto_auth() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS["AWS_REGION"],
    }


@pytest.fixture(scope="module")
def emulator_s3() -> Iterator[Emulator]:
    emu = start_emulator("--stripe-connected")
    yield emu
    emu.stop()


def locks(endpoint: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=f"http://{endpoint}", **_boto_auth()).list_objects_v2(
        Bucket=BUCKET, Prefix=".pulumi/locks/"
    )
    return [o["Key"] for o in listing.get("Contents", [])]


def test_dev_stack_on_a_shared_bucket_and_a_concurrent_up_is_refused(
    pulumi_cli: str, emulator_s3: Emulator, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    backend = f"s3://{BUCKET}?endpoint={s3_endpoint}&s3ForcePathStyle=true&disableSSL=true&region=us-east-1"
    project = PulumiProject(tmp_path_factory.mktemp("s3"), pulumi_cli, emulator_s3, backend=backend, env=AWS)
    project.run("up", "--yes")
    project.run("preview", "--expect-no-changes")

    # A slow first `up` (every emulator call takes 1 s) holds the lock; a second one starts meanwhile.
    assert emulator_s3.admin("POST", "config", json={"latency_ms": 1000}).status_code == 200
    cmd = [pulumi_cli, "up", "--refresh", "--yes", "--non-interactive", "--stack", project.stack]
    first = subprocess.Popen(
        cmd, cwd=project.dir, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not locks(s3_endpoint) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert locks(s3_endpoint), "the first up took no lock in the bucket"
    second = subprocess.run(
        cmd, cwd=project.dir, env=project.env, capture_output=True, text=True, timeout=600
    )
    out, err = first.communicate(timeout=600)
    emulator_s3.admin("POST", "config", json={"latency_ms": 0})

    assert first.returncode == 0, out + err
    assert second.returncode != 0, second.stdout
    assert "locked" in second.stdout + second.stderr, second.stdout + second.stderr
    assert not locks(s3_endpoint)  # released
    project.run("preview", "--refresh", "--expect-no-changes")  # the state is whole
    assert len(project.resources("Customer")) == len(
        load_stack(project.environment.parent).environment.customers
    )
