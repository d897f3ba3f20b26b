"""`metronome-iac promote`: check (2 = lag), copy, environment untouched, refusals (1): uncommitted target
edits, a target stack that does not exist."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from metronome_iac.cli import main

REPO = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A temp git repo holding a copy of the stacks, committed."""
    if shutil.which("git") is None:
        pytest.skip("git not on PATH")
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    _git(tmp_path, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "init")
    return tmp_path


def _promote(repo: Path, *extra: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(repo)
    return main(["promote", "--from", "staging", "--to", "prod", *extra])


def test_in_sync_check_passes(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert _promote(repo, "--check", monkeypatch=monkeypatch) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_fails_then_promote_copies(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    staging = repo / "stacks" / "staging" / "catalog.yaml"
    prod = repo / "stacks" / "prod" / "catalog.yaml"
    prod_env = repo / "stacks" / "prod" / "environment.yaml"
    env_before = prod_env.read_bytes()
    text = staging.read_text()
    text = text.replace("price: 300\n", "price: 310\n", 1)
    text = text.replace("    display_name: Output tokens\n", "    display_name: Output tokens (v2)\n", 1)
    text = text.replace(
        "  - name: prepaid_commit\n    display_name: Prepaid token commitment\n    type: FIXED\n",
        "  - name: prepaid_commit\n    display_name: Prepaid token commitment\n    type: FIXED\n"
        "  - name: support_plan\n    type: FIXED\n",
    )
    staging.write_text(text)
    prod_before = prod.read_bytes()

    assert _promote(repo, "--check", monkeypatch=monkeypatch) == 2  # lag: needs attention
    out = capsys.readouterr()
    assert prod.read_bytes() == prod_before  # --check writes nothing
    assert "+ product 'support_plan': prod gains" in out.out
    assert "~ billable metric 'output_tokens': changes" in out.out
    assert 'display_name: "Output tokens" -> "Output tokens (v2)"' in out.out
    assert (
        "rates[input_tokens_product {model: large, region: us} from 2026-01-01T00:00:00Z].price: 300 -> 310"
        in (out.out)
    )
    assert "lags" in out.err

    assert _promote(repo, monkeypatch=monkeypatch) == 0
    assert prod.read_bytes() == staging.read_bytes()
    assert prod_env.read_bytes() == env_before
    assert _promote(repo, "--check", monkeypatch=monkeypatch) == 0


def test_reports_what_the_target_loses(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    prod = repo / "stacks" / "prod" / "catalog.yaml"
    text = prod.read_text()  # one more rate card, at the end of the rate_cards section
    prod.write_text(text.replace("\npackages:\n", "\n  - name: legacy_card\n    rates: []\npackages:\n", 1))
    _git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "legacy")
    assert _promote(repo, "--check", monkeypatch=monkeypatch) == 2  # lag: needs attention
    assert "- rate card 'legacy_card': prod loses" in capsys.readouterr().out
    assert _promote(repo, monkeypatch=monkeypatch) == 0
    assert "legacy_card" not in prod.read_text()


def test_refuses_with_uncommitted_target_edits(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    staging = repo / "stacks" / "staging" / "catalog.yaml"
    prod = repo / "stacks" / "prod" / "catalog.yaml"
    staging.write_text(staging.read_text().replace("price: 300\n", "price: 310\n", 1))
    prod.write_text(prod.read_text().replace("price: 50\n", "price: 55\n", 1))
    hand_edited = prod.read_bytes()
    assert _promote(repo, monkeypatch=monkeypatch) == 1
    err = capsys.readouterr().err
    assert "uncommitted edits" in err and "prod/catalog.yaml" in err
    assert prod.read_bytes() == hand_edited


def test_refuses_when_target_environment_would_break(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    staging = repo / "stacks" / "staging" / "catalog.yaml"
    staging.write_text(staging.read_text().replace("  - name: standard\n", "  - name: standard_v2\n"))
    prod_before = (repo / "stacks" / "prod" / "catalog.yaml").read_bytes()
    assert _promote(repo, monkeypatch=monkeypatch) == 1
    err = capsys.readouterr().err
    assert "unknown rate card 'standard'" in err
    assert (repo / "stacks" / "prod" / "catalog.yaml").read_bytes() == prod_before


@pytest.mark.parametrize("check", [False, True])
def test_refuses_a_target_stack_that_does_not_exist(
    check: bool, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(repo)
    args = ["promote", "--from", "staging", "--to", "prdo", *(["--check"] if check else [])]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --to prdo: there is no stack prdo"), err
    assert "dev, prod, staging" in err  # the stacks that do exist
    assert "cp -r stacks/staging stacks/prdo" in err  # how to make a new stack deliberately
    assert not (repo / "stacks" / "prdo").exists()


def test_refuses_a_source_stack_that_does_not_exist(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(repo)
    assert main(["promote", "--from", "stagin", "--to", "prod"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --from stagin: there is no stack stagin") and "staging" in err, err


def test_packages_and_account_wide_alerts_promote(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    staging = repo / "stacks" / "staging" / "catalog.yaml"
    text = staging.read_text().replace("net_payment_terms_days: 0", "net_payment_terms_days: 15", 1)
    staging.write_text(text.replace("threshold: 1000\n", "threshold: 2000\n", 1))
    _git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "terms")
    assert _promote(repo, "--check", monkeypatch=monkeypatch) == 2
    out = capsys.readouterr().out
    assert "package 'self_serve': changes" in out and "net_payment_terms_days: 0 -> 15" in out
    assert "alert 'low_balance': changes" in out and "threshold: 1000 -> 2000" in out
    assert _promote(repo, monkeypatch=monkeypatch) == 0
    assert (repo / "stacks" / "prod" / "catalog.yaml").read_text() == staging.read_text()
    # Customers' alerts are the environment's: never touched.
    assert "spend_over_20000" in (repo / "stacks" / "prod" / "environment.yaml").read_text()
