"""``nbops drift REFERENCE CURRENT`` on CSV and Parquet files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbops.monitor import DriftReport
from tests.conftest import subprocess_env


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 3_000

    def make(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "x": rng.normal(shift, 1, n),
                "y": rng.normal(0, 1, n),
                "color": rng.choice(["red", "green"], n, p=[0.5 + shift / 2, 0.5 - shift / 2]),
            }
        )

    paths = {
        "ref": tmp_path / "ref.csv",
        "same": tmp_path / "same.parquet",
        "moved": tmp_path / "moved.csv.gz",
    }
    make(0).to_csv(paths["ref"], index=False)
    make(0).to_parquet(paths["same"])
    make(0.4).to_csv(paths["moved"], index=False)
    return paths


def test_no_drift_table(cli: Any, files: dict[str, Path]) -> None:
    result = cli("drift", str(files["ref"]), str(files["same"]), "--fail-on-drift")
    assert result.exit_code == 0, result.stderr
    assert "COLUMN" in result.output and "no drift: 0/3 columns drifted" in result.output


def test_fail_on_drift_exit_code_3_with_html_and_json(
    cli: Any, files: dict[str, Path], tmp_path: Path
) -> None:
    html = tmp_path / "reports" / "drift.html"
    result = cli(
        "drift",
        str(files["ref"]),
        str(files["moved"]),
        "--json",
        "--html",
        str(html),
        "--fail-on-drift",
    )
    assert result.exit_code == 3
    assert "exit code 3" in result.stderr
    report = DriftReport.from_json(result.output)
    assert report.drifted_columns == ["x", "color"]
    assert "<svg" in html.read_text() and "moved.csv.gz" in html.read_text()
    plain = cli("drift", str(files["ref"]), str(files["moved"]))
    assert plain.exit_code == 0 and "DRIFT: 2/3 columns" in plain.output


def test_columns_and_thresholds(cli: Any, files: dict[str, Path]) -> None:
    result = cli(
        "drift",
        str(files["ref"]),
        str(files["moved"]),
        "--columns",
        "y,color",
        "--json",
        "--threshold",
        "share=1",
        "--threshold",
        "tvd=0.5",
        "--threshold",
        "psi=5",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.output)
    assert [c["name"] for c in data["columns"]] == ["y", "color"]
    assert data["drifted_columns"] == [] and data["thresholds"]["tvd"] == 0.5


def test_errors(cli: Any, files: dict[str, Path], tmp_path: Path) -> None:
    missing = cli("drift", str(files["ref"]), str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    (tmp_path / "data.txt").write_text("x\n1\n")
    fmt = cli("drift", str(files["ref"]), str(tmp_path / "data.txt"))
    assert fmt.exit_code == 2 and "use a .csv, .tsv or .parquet file" in fmt.stderr
    unknown = cli("drift", str(files["ref"]), str(files["same"]), "--columns", "x,zzz")
    assert unknown.exit_code == 1 and "unknown column(s) 'zzz'" in unknown.stderr
    pd.DataFrame({"x": [1.0], "other": [2.0]}).to_csv(tmp_path / "other.csv", index=False)
    schema = cli("drift", str(files["ref"]), str(tmp_path / "other.csv"))
    assert schema.exit_code == 1 and "only in reference: 'y', 'color'" in schema.stderr
    bad = cli("drift", str(files["ref"]), str(files["same"]), "--threshold", "alpha")
    assert bad.exit_code == 2 and "NAME=NUMBER" in bad.stderr


def test_console_script_in_a_subprocess(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbops",
            "drift",
            str(files["ref"]),
            str(files["moved"]),
            "--fail-on-drift",
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "DRIFT" in proc.stdout


def test_the_domain_classifier_line_and_its_switches(cli: Any, files: dict[str, Path]) -> None:
    plain = cli("drift", str(files["ref"]), str(files["moved"]))
    assert "domain classifier: tells the tables apart (AUC" in plain.output
    assert "threshold 0.6" in plain.output
    tuned = cli("drift", str(files["ref"]), str(files["moved"]), "--domain-auc", "0.99", "--json")
    assert json.loads(tuned.output)["domain"]["threshold"] == 0.99
    off = cli("drift", str(files["ref"]), str(files["moved"]), "--no-domain", "--json")
    assert off.exit_code == 0 and json.loads(off.output)["domain"] is None
    bad = cli("drift", str(files["ref"]), str(files["moved"]), "--domain-auc", "2")
    assert bad.exit_code != 0 and "Error: domain auc must be a number" in bad.stderr
