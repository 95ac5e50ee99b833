from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbops
from tests.conftest import subprocess_env


def _two_runs() -> tuple[str, str]:
    with nbops.init(project="cli", name="a", config={"lr": 0.1, "depth": 3}) as a:
        a.log({"acc": 0.8})
    with nbops.init(project="cli", name="b", config={"lr": 0.2, "depth": 3}) as b:
        b.log({"acc": 0.9, "loss": 0.1})
    return a.id, b.id


def test_version(cli: Any) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"nbops {nbops.__version__}"


def test_runs_list_text_and_json(cli: Any) -> None:
    a, b = _two_runs()
    result = cli("runs", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "PROJECT", "STATUS"]
    assert a in lines[1] and "acc=0.8" in lines[1] and "finished" in lines[1]
    data = json.loads(cli("runs", "list", "--json").output)
    assert [r["id"] for r in data] == [a, b]
    assert data[1]["metrics"] == {"acc": 0.9, "loss": 0.1}
    assert json.loads(cli("runs", "list", "--project", "none", "--json").output) == []
    assert "No runs" in cli("runs", "list", "--project", "none").output


def test_runs_show_by_prefix_and_latest(cli: Any) -> None:
    a, b = _two_runs()
    result = cli("runs", "show", a[:10])
    assert result.exit_code == 0
    assert f"Run {a} (a)" in result.output and "lr = 0.1" in result.output
    doc = json.loads(cli("runs", "show", "latest", "--json").output)
    assert doc["id"] == b and doc["params"] == {"lr": 0.2, "depth": 3}
    assert doc["metrics"] == {"acc": 0.9, "loss": 0.1}
    assert doc["datasets"] == [] and doc["models"] == []


def test_runs_compare_marks_differences(cli: Any) -> None:
    a, b = _two_runs()
    result = cli("runs", "compare", a, b)
    assert result.exit_code == 0
    rows = {
        line.split()[-3] if line.startswith("*") else line.split()[0]: line
        for line in result.output.splitlines()[1:-1]
    }
    assert rows["params.lr"].startswith("*")
    assert not rows["params.depth"].startswith("*")
    assert rows["metrics.loss"].rstrip().endswith("0.1") and " - " in rows["metrics.loss"]
    doc = json.loads(cli("runs", "compare", a, b, "--json").output)
    assert {r["key"]: r["differs"] for r in doc["rows"]} == {
        "lr": True,
        "depth": False,
        "acc": True,
        "loss": True,
    }


def test_errors_say_what_to_do(cli: Any) -> None:
    result = cli("runs", "show", "nosuchrun")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no run 'nosuchrun'")
    assert "nbops runs list" in result.stderr
    assert cli("runs", "show", "latest").stderr.startswith("Error: the store")
    assert cli("runs", "compare", "only-one").exit_code == 2
    assert cli("runs", "bogus").exit_code == 2


def test_sync_without_a_key_is_a_clear_error(cli: Any, tmp_path: Path) -> None:
    run_dir = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "run-abc.wandb").write_bytes(b"")
    result = cli("sync", "--dir", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "WANDB_API_KEY" in result.stderr or "wandb login" in result.stderr


def test_sync_with_nothing_to_sync(cli: Any, tmp_path: Path) -> None:
    result = cli("sync", "--dir", str(tmp_path))
    assert result.exit_code == 0
    assert "nothing to sync" in result.output.lower()


def test_install_extension_makes_ipython_load_nbops(
    cli: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    ipython_dir = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    config = ipython_dir / "profile_default" / "ipython_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"InteractiveShell": {"colors": "nocolor"}}))
    assert cli("install-extension").exit_code == 0
    assert cli("install-extension").exit_code == 0  # idempotent
    data = json.loads(config.read_text())
    assert data["InteractiveShellApp"]["extensions"] == ["nbops"]
    assert data["InteractiveShell"] == {"colors": "nocolor"}  # the rest is kept

    probe = "print('nbops' in get_ipython().extension_manager.loaded)"
    env = subprocess_env(IPYTHONDIR=str(ipython_dir))
    ipython = [sys.executable, "-m", "IPython", "--no-banner", "-c", probe]
    out = subprocess.run(ipython, env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.strip().endswith("True")

    assert cli("install-extension", "--uninstall").exit_code == 0
    assert json.loads(config.read_text())["InteractiveShellApp"]["extensions"] == []
    out = subprocess.run(ipython, env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.strip().endswith("False")


def test_install_extension_refuses_a_broken_config(
    cli: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    config = tmp_path / "profile_default" / "ipython_config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{not json")
    result = cli("install-extension")
    assert result.exit_code == 1
    assert "not valid JSON" in result.stderr
    assert config.read_text() == "{not json"  # untouched


def test_python_dash_m_nbops() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nbops", "--version"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    assert done.stdout.startswith("nbops ")


def _strict_loads(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {constant} in --json output")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_for_nan_and_infinity(cli: Any) -> None:
    with nbops.init(project="cli", name="odd", config={"scale": float("inf")}) as run:
        run.log({"loss": float("nan"), "gain": float("inf"), "drop": float("-inf"), "ok": 1.0})
        run.summary["best"] = float("nan")
    listed = _strict_loads(cli("runs", "list", "--json").output)
    assert listed[0]["metrics"] == {"loss": None, "gain": None, "drop": None, "ok": 1.0}
    shown = _strict_loads(cli("runs", "show", run.id, "--json").output)
    assert shown["metrics"]["gain"] is None and shown["metrics"]["ok"] == 1.0
    with nbops.init(project="cli", name="plain") as other:
        other.log({"loss": 0.5})
    compared = _strict_loads(cli("runs", "compare", run.id, other.id, "--json").output)
    loss = next(r for r in compared["rows"] if r["key"] == "loss")
    assert loss["values"] == [None, 0.5]


def test_the_json_writer_converts_what_commands_hold() -> None:
    import datetime as dt
    import io

    import numpy as np

    from nbops.cli._output import print_json, strict_json

    doc = {
        1: np.float64("nan"),
        "arr": np.array([1.0, np.inf]),
        "i": np.int64(3),
        "when": dt.datetime(2026, 1, 2, 3, 4, 5),
        "path": Path("/x/y"),
        "set": {2, 1},
        "tuple": (float("-inf"), "a"),
    }
    assert strict_json(doc) == {
        "1": None,
        "arr": [1.0, None],
        "i": 3,
        "when": "2026-01-02T03:04:05",
        "path": "/x/y",
        "set": [1, 2],
        "tuple": [None, "a"],
    }
    out = io.StringIO()
    print_json({"x": float("nan")}, file=out)
    assert _strict_loads(out.getvalue()) == {"x": None}


def test_every_json_option_uses_the_shared_writer() -> None:
    import re

    import nbops.cli as cli_package

    folder = Path(cli_package.__file__).parent
    for module in folder.glob("_*.py"):
        source = module.read_text()
        if '"--json"' not in source:
            continue
        assert re.search(r"\b(print|dumps)_json\(", source), f"{module.name}: --json, no writer"
        pattern = r"print\(\s*json\.dumps|json\.dumps\([^)]*(indent|allow_nan)|\.to_json\(\)"
        assert not re.search(pattern, source), module.name
