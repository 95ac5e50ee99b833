"""Executing notebooks: declared parameters, code hashes, and every way a run can end."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import pytest

from nbops.execute import (
    CellError,
    ExecutionError,
    ExecutionTimeoutError,
    KernelDiedError,
    KernelNotFoundError,
    NotebookError,
    ParameterError,
    check_parameters,
    code_hash,
    declared_parameters,
    execute_notebook,
    read_notebook,
)
from tests.pipeline.conftest import write_notebook


def outputs(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_declared_parameters_and_types(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "p.ipynb", "lr = 0.1\nn: int = 3\nname = 'a'\nfn = len\nnone = None", "pass"
    )
    params = declared_parameters(nb)
    assert {k: p.type_name for k, p in params.items()} == {
        "lr": "float",
        "n": "int",
        "name": "str",
        "fn": "expression",
        "none": "none",
    }
    check_parameters(nb, {"lr": 1, "n": 4, "fn": "anything", "none": [1]})
    with pytest.raises(ParameterError) as info:
        check_parameters(nb, {"lrr": 1, "n": 1.5, "name": True})
    assert len(info.value.problems) == 3
    assert "did you mean 'lr'" in info.value.problems[0]


def test_notebook_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="does not exist"):
        declared_parameters(tmp_path / "none.ipynb")
    (tmp_path / "bad.ipynb").write_text("{not json")
    with pytest.raises(NotebookError, match="cannot read notebook"):
        read_notebook(tmp_path / "bad.ipynb")
    write_notebook(tmp_path / "np.ipynb", None, "x = 1")
    with pytest.raises(NotebookError, match="no cell tagged 'parameters'"):
        declared_parameters(tmp_path / "np.ipynb")
    write_notebook(tmp_path / "syntax.ipynb", "x = (", "pass")
    with pytest.raises(NotebookError, match="not valid Python"):
        declared_parameters(tmp_path / "syntax.ipynb")


def test_code_hash_ignores_everything_but_code(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "h.ipynb", "x = 1", "print(x)", markdown="# title")
    nb = read_notebook(path)
    before = code_hash(nb)
    nb["cells"][0]["source"] = "# another title"
    nb["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    nb["cells"][2]["execution_count"] = 3
    nb["metadata"]["extra"] = True
    assert code_hash(nb) == before
    nb["cells"][2]["source"] = "print(x + 1)"
    assert code_hash(nb) != before


@pytest.mark.kernel
def test_parameters_env_and_cwd_apply_to_the_kernel_only(tmp_path: Path) -> None:
    nb = write_notebook(
        tmp_path / "e.ipynb",
        "x = 1",
        "import os\nprint(x, os.environ.get('ONLY_HERE'), os.getcwd())",
    )
    (tmp_path / "work").mkdir()
    out = tmp_path / "out" / "e.ipynb"
    result = execute_notebook(nb, out, {"x": 5}, env={"ONLY_HERE": "yes"}, cwd=tmp_path / "work")
    assert outputs(out).strip() == f"5 yes {tmp_path / 'work'}"
    assert result.parameters == {"x": 5} and result.seconds > 0


@pytest.mark.kernel
def test_two_executions_at_once_on_threads(tmp_path: Path) -> None:
    # Each notebook marks that it started, then waits for the other's mark: run one after the
    # other, the first would wait out its deadline and print False. No wall-clock bound.
    nb = write_notebook(
        tmp_path / "t.ipynb",
        "tag = ''\nmark = ''\nother = ''",
        "import os, time\nfrom pathlib import Path\nPath(mark).write_text('started')\n"
        "deadline = time.monotonic() + 120\n"
        "while not Path(other).exists() and time.monotonic() < deadline:\n    time.sleep(0.05)\n"
        "print(tag, os.environ['WHO'], Path(other).exists())",
    )
    errors: list[BaseException] = []

    def run(i: int) -> None:
        marks = {"mark": str(tmp_path / f"m{i}"), "other": str(tmp_path / f"m{1 - i}")}
        try:
            execute_notebook(
                nb, tmp_path / f"t{i}.ipynb", {"tag": f"t{i}", **marks}, env={"WHO": str(i)}
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    outs = [outputs(tmp_path / f"t{i}.ipynb").strip() for i in range(2)]
    assert outs == ["t0 0 True", "t1 1 True"]  # overlapped, not serialised


@pytest.mark.kernel
def test_cell_error_dead_kernel_timeout_and_missing_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kernel socket folders go to a private, short temp dir (socket paths have a length limit)
    sockets = Path(tempfile.mkdtemp(prefix="nbt-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(sockets))
    err = write_notebook(tmp_path / "err.ipynb", "", "raise KeyError('k')")
    with pytest.raises(CellError) as info:
        execute_notebook(err, tmp_path / "o1.ipynb")
    assert (info.value.ename, info.value.cell_index) == ("KeyError", 1)  # no injected cell
    assert "KeyError" in (tmp_path / "o1.ipynb").read_text()

    dies = write_notebook(tmp_path / "dies.ipynb", "", "import os\nos._exit(1)")
    with pytest.raises(KernelDiedError):
        execute_notebook(dies, tmp_path / "o2.ipynb")

    slow = write_notebook(tmp_path / "slow.ipynb", "", "import time\ntime.sleep(60)")
    started = time.monotonic()
    with pytest.raises(ExecutionTimeoutError, match="within 2 s"):
        execute_notebook(slow, tmp_path / "o3.ipynb", timeout=2)
    assert time.monotonic() - started < 55  # stopped at the timeout, not after the 60 s sleep

    with pytest.raises(KernelNotFoundError, match="ipykernel install"):
        execute_notebook(err, tmp_path / "o4.ipynb", kernel_name="no-such-kernel")
    assert list(sockets.iterdir()) == []  # every kernel's socket folder was removed
    sockets.rmdir()


@pytest.mark.kernel
def test_kill_kernel_kills_the_processes_the_notebook_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    import nbops.execute._papermill as papermill_module
    from nbops.execute import kill_kernel, start_kernel
    from nbops.process import pid_alive

    # no graceful shutdown afterwards: kill_kernel alone must take the children down
    kept: list[object] = []
    monkeypatch.setattr(papermill_module, "_shutdown_later", kept.append)
    pidfile = tmp_path / "child.pid"
    spawner = write_notebook(
        tmp_path / "spawn.ipynb",
        "",
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)",
    )
    manager = start_kernel("python3", cwd=tmp_path)
    errors: list[BaseException] = []

    def execute() -> None:
        try:
            execute_notebook(
                spawner, tmp_path / "out.ipynb", kernel=manager, wait_for_shutdown=False
            )
        except ExecutionError as exc:
            errors.append(exc)

    worker = threading.Thread(target=execute)
    worker.start()
    child = 0
    try:
        deadline = time.monotonic() + 60
        while not pidfile.is_file() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the notebook never started its child"
            time.sleep(0.1)
        child = int(pidfile.read_text())
        kill_kernel(manager)
        worker.join(timeout=60)
        assert errors and isinstance(errors[0], KernelDiedError)
        deadline = time.monotonic() + 20
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(child), "the notebook's child process outlived its killed kernel"
    finally:
        if child and pid_alive(child):
            os.kill(child, signal.SIGKILL)
        papermill_module._shutdown(manager)
