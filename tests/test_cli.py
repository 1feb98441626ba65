"""The command line: audit and preprocess, exit codes and one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from ecg_core.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_audit_prints_counts(tiny_dataset, capsys):
    assert main(["audit", str(tiny_dataset), "--split-seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "files: 28 (28 readable, 0 unreadable)" in out
    assert "duplicate groups: 24 (2 with copies, 1 joined by near copies only)" in out
    assert "leakage check: OK" in out


def test_audit_bad_folder_exit_code_and_one_line(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: dataset folder")


def test_preprocess_folder_skips_bad_files(tiny_dataset, tmp_path, capsys):
    bad = tiny_dataset / "Normal Person ECG Images (284x12=3408)" / "bad.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "pp"
    assert main(["preprocess", str(tiny_dataset), "--out", str(out), "--height", "48", "--width", "64"]) == 0
    assert len(list(out.rglob("*.png"))) == 28
    cap = capsys.readouterr()
    assert "preprocessed 28 of 29 images" in cap.out and "bad.jpg" in cap.err


def test_preprocess_invalid_option(tiny_dataset, tmp_path, capsys):
    assert main(["preprocess", str(tiny_dataset), "--out", str(tmp_path / "o"), "--height", "4"]) == 2
    assert "height must be" in capsys.readouterr().err


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "ecg_core", "--help"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and "audit" in r.stdout


def test_audit_real_dataset_subprocess():
    root = SHARED_DATA / "mendeley-dev"
    if not root.is_dir():
        pytest.skip(f"real dataset not present at {root}")
    r = subprocess.run([sys.executable, "-m", "ecg_core", "audit", str(root)], cwd=REPO, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "files: 648" in r.stdout and "distinct images (exact content): 343" in r.stdout
    assert "duplicate groups: 343 (180 with copies" in r.stdout
    for line in ("Myocardial Infarction       167 files      21 distinct",
                 "Abnormal Heartbeat          163 files     163 distinct",
                 "Normal                      198 files      99 distinct",
                 "History of MI               120 files      60 distinct"):
        assert line in r.stdout
