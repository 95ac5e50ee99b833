"""``nbops.yaml``: the pipeline spec, loaded and validated before anything runs."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from nbops.errors import InvalidValueError, NbopsError
from nbops.names import check_name

SPEC_FILE = "nbops.yaml"
STAGE_KEYS = (
    "notebook",
    "params",
    "deps",
    "outs",
    "gates",
    "after",
    "timeout",
    "kernel",
    "sweep",
    "foreach",
    "matrix",
)
#: Top-level sections other parts of nbops read from the same file.
TOP_LEVEL_KEYS = ("stages", "card", "monitor", "project", "pipeline", "remotes")
GATE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")


class SpecError(NbopsError):
    """``nbops.yaml`` is invalid. ``problems`` lists every problem found, each naming its stage."""

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{path} is invalid ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class Gate:
    """A condition on a metric the stage's notebook logged, e.g. ``accuracy >= 0.9``."""

    metric: str
    op: str
    threshold: float

    def passes(self, value: float) -> bool:
        ops = {
            ">=": value >= self.threshold,
            "<=": value <= self.threshold,
            ">": value > self.threshold,
            "<": value < self.threshold,
            "==": value == self.threshold,
            "!=": value != self.threshold,
        }
        return ops[self.op]

    def describe_failure(self, stage: str, value: float) -> str:
        """``evaluate: accuracy 0.81 < 0.9 (gate >= 0.9)``."""
        opposite = {">=": "<", "<=": ">", ">": "<=", "<": ">=", "==": "!=", "!=": "=="}[self.op]
        return (
            f"{stage}: {self.metric} {value:.6g} {opposite} {self.threshold:g} "
            f"(gate {self.op} {self.threshold:g})"
        )


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline, with what it reads, writes and must achieve."""

    name: str
    notebook: str
    params: Mapping[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    gates: tuple[Gate, ...] = ()
    after: tuple[str, ...] = ()
    timeout: float | None = None
    kernel: str | None = None
    sweep: Mapping[str, Any] | None = None
    #: where ``params`` were read from (``params: {file: ..., keys: [...]}``), if a file
    params_file: str | None = None


@dataclass(frozen=True)
class PipelineSpec:
    """The stages of ``nbops.yaml`` (in file order) and the folder the paths are relative to."""

    root: Path
    stages: Mapping[str, Stage]
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: shape problems found while loading (stages with one are left out of ``stages``);
    #: :func:`~nbops.pipeline.validate` reports them together with the semantic ones
    problems: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return self.root / SPEC_FILE


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _paths(stage: str, key: str, value: Any, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        problems.append(f"stage {stage!r}: {key} must be a list of paths")
        return ()
    out = []
    for item in items:
        posix = PurePosixPath(item.replace(os.sep, "/"))
        if posix.is_absolute() or ".." in posix.parts:
            problems.append(
                f"stage {stage!r}: {key} path {item!r} must be relative to the project "
                "root and stay inside it"
            )
            continue
        out.append(posix.as_posix().rstrip("/"))
    return tuple(out)


def _gates(stage: str, value: Any, problems: list[str]) -> tuple[Gate, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        problems.append(
            f"stage {stage!r}: gates must map metric names to conditions such as '>= 0.9'"
        )
        return ()
    gates = []
    for metric, condition in value.items():
        match = GATE.match(str(condition))
        if match is None:
            problems.append(
                f"stage {stage!r}: gate {metric}: {condition!r} is not a condition; "
                "write an operator (>=, >, <=, <, ==, !=) and a number, e.g. '>= 0.9'"
            )
            continue
        gates.append(Gate(str(metric), match.group(1), float(match.group(2))))
    return tuple(gates)


SWEEP_KEYS = ("space", "n_trials", "metric", "direction", "jobs", "timeout")


def _sweep_options(stage: str, value: Any, problems: list[str]) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.append(f"stage {stage!r}: sweep must be a mapping (space, n_trials, metric)")
        return None
    for key in value:
        if key not in SWEEP_KEYS:
            problems.append(
                f"stage {stage!r}: sweep: unknown key {key!r}{_suggest(str(key), SWEEP_KEYS)}"
            )
    if not isinstance(value.get("space"), (Mapping, str)):
        problems.append(f"stage {stage!r}: sweep needs space: a mapping or a YAML file")
    n_trials = value.get("n_trials")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        problems.append(f"stage {stage!r}: sweep needs n_trials: a positive integer")
    if not isinstance(value.get("metric"), str):
        problems.append(f"stage {stage!r}: sweep needs metric: the name the notebook logs")
    if value.get("direction") not in ("maximize", "minimize"):
        problems.append(
            f"stage {stage!r}: sweep needs direction: maximize or minimize (nbops does not "
            "guess whether higher is better)"
        )
    return dict(value)


def _read_params_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        import json

        return json.loads(text)
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    from nbops.pipeline._yaml import yaml_load

    return yaml_load(text)


def _params_from_file(
    name: str, value: Mapping[str, Any], root: Path, problems: list[str]
) -> dict[str, Any]:
    """``params: {file: params.yaml, keys: [train.lr]}`` -> ``{"lr": <value in the file>}``."""
    file, keys = value.get("file"), value.get("keys")
    if not isinstance(file, str) or not file:
        problems.append(f"stage {name!r}: params file: must be a path (YAML, JSON or TOML)")
        return {}
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        problems.append(
            f"stage {name!r}: params from {file} need keys: a list such as [train.lr, train.depth]"
        )
        return {}
    located = _paths(name, "params file", file, problems)
    if not located:
        return {}
    import yaml

    try:
        data = _read_params_file(root / located[0])
    except FileNotFoundError:
        problems.append(f"stage {name!r}: params file {file} does not exist")
        return {}
    except (OSError, ValueError, ImportError, yaml.YAMLError) as exc:  # JSON/TOML: ValueError
        problems.append(f"stage {name!r}: cannot read params file {file}: {exc}")
        return {}
    params: dict[str, Any] = {}
    for key in keys:
        node: Any = data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                problems.append(f"stage {name!r}: params file {file} has no key {key!r}")
                break
            node = node[part]
        else:
            short = key.rsplit(".", 1)[-1]
            if short in params:
                problems.append(
                    f"stage {name!r}: two keys of {file} end in {short!r}; a notebook parameter "
                    "takes one value"
                )
            params[short] = node
    return params


def _stage(name: str, body: Any, problems: list[str], root: Path | None = None) -> Stage | None:
    try:
        check_name(name.split("@", 1)[0], "stage name", dots=False)
    except InvalidValueError as exc:
        problems.append(str(exc))
        return None
    if not isinstance(body, Mapping):
        problems.append(f"stage {name!r}: expected a mapping with at least 'notebook'")
        return None
    for key in body:
        if key not in STAGE_KEYS:
            problems.append(
                f"stage {name!r}: unknown key {key!r}{_suggest(str(key), STAGE_KEYS)}; "
                f"allowed: {', '.join(STAGE_KEYS)}"
            )
    notebook = body.get("notebook")
    if not isinstance(notebook, str) or not notebook:
        problems.append(f"stage {name!r}: 'notebook' (the path of its .ipynb) is required")
        return None
    params = body.get("params") or {}
    params_file = None
    if not isinstance(params, Mapping):
        problems.append(f"stage {name!r}: params must be a mapping of parameter names to values")
        params = {}
    elif "file" in params and set(params) <= {"file", "keys"}:
        params_file = str(params.get("file"))
        params = _params_from_file(name, params, root or Path("."), problems)
    timeout = body.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        problems.append(f"stage {name!r}: timeout must be a positive number of seconds")
        timeout = None
    kernel = body.get("kernel")
    if kernel is not None and not isinstance(kernel, str):
        problems.append(f"stage {name!r}: kernel must be a kernel name such as 'python3'")
        kernel = None
    after = body.get("after") or []
    if isinstance(after, str):
        after = [after]
    sweep = _sweep_options(name, body.get("sweep"), problems)
    return Stage(
        name=str(name),
        notebook=notebook,
        params=dict(params),
        deps=_paths(name, "deps", body.get("deps"), problems),
        outs=_paths(name, "outs", body.get("outs"), problems),
        gates=_gates(name, body.get("gates"), problems),
        after=tuple(str(a) for a in after),
        timeout=float(timeout) if timeout else None,
        kernel=kernel,
        sweep=dict(sweep) if sweep else None,
        params_file=params_file,
    )


PIPELINE_KEYS = ("card", "executor")
CARD_KEYS = ("model", "output", "html")
EXECUTOR_KEYS = ("url", "shared_disk", "retries")


def _executor_options(value: Any, problems: list[str]) -> None:
    """``executor: URL`` or ``executor: {url: URL, shared_disk: BOOL, retries: N}``."""
    from nbops.cluster import parse_executor

    body = {"url": value} if isinstance(value, str) else value
    if not isinstance(body, Mapping) or not isinstance(body.get("url"), str):
        problems.append(
            "pipeline.executor: write a URL (local or dask://HOST:PORT) or "
            "{url: dask://HOST:PORT, shared_disk: false, retries: 1}"
        )
        return
    for key in body:
        if key not in EXECUTOR_KEYS:
            problems.append(
                f"pipeline.executor: unknown key {key!r}{_suggest(str(key), EXECUTOR_KEYS)}"
            )
    try:
        parse_executor(body["url"])
    except NbopsError as exc:
        problems.append(f"pipeline.executor: {exc}")
    if not isinstance(body.get("shared_disk", False), bool):
        problems.append("pipeline.executor.shared_disk must be true or false")
    retries = body.get("retries", 1)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        problems.append("pipeline.executor.retries must be a whole number, 0 or more")


def _pipeline_options(value: Any, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        problems.append("pipeline: must be a mapping (e.g. card: {model: NAME})")
        return
    for key in value:
        if key not in PIPELINE_KEYS:
            problems.append(f"pipeline: unknown key {key!r}{_suggest(str(key), PIPELINE_KEYS)}")
    if value.get("executor") is not None:
        _executor_options(value["executor"], problems)
    card = value.get("card")
    if card is None:
        return
    if not isinstance(card, Mapping) or not isinstance(card.get("model"), str):
        problems.append(
            "pipeline.card needs model: the registered model (NAME, NAME:VERSION or "
            "NAME@ALIAS) whose card is written after a successful run"
        )
        return
    for key in card:
        if key not in CARD_KEYS:
            problems.append(f"pipeline.card: unknown key {key!r}{_suggest(str(key), CARD_KEYS)}")


def parse_spec(
    raw: Any,
    root: Path,
    source: str = SPEC_FILE,
    *,
    strict: bool = True,
    pins: Mapping[str, Mapping[str, Any]] | None = None,
) -> PipelineSpec:
    """Build a :class:`PipelineSpec` from parsed YAML, checking its shape (not the notebooks).

    With ``strict=False`` shape problems are kept in ``problems`` instead of raised, so that
    :func:`~nbops.pipeline.validate` can report them with every other problem at once.
    ``pins`` (``{group: {axis: value}}``, from ``-p``) adds the foreach/matrix stages a pinned
    value names when the spec does not list that value.
    """
    problems: list[str] = []
    if not isinstance(raw, Mapping) or not isinstance(raw.get("stages"), Mapping):
        raise SpecError(source, ["the file needs a 'stages:' mapping of stage names to stages"])
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"unknown top-level key {key!r}{_suggest(str(key), TOP_LEVEL_KEYS)}")
    stages: dict[str, Stage] = {}
    from nbops.pipeline._matrix import expand

    for group, group_body in raw["stages"].items():
        if "@" in str(group):
            problems.append(f"stage name {group!r}: '@' is reserved for foreach/matrix stages")
            continue
        for name, body in expand(str(group), group_body, problems, (pins or {}).get(str(group))):
            stage = _stage(name, body, problems, root)
            if stage is not None:
                stages[stage.name] = stage
    _pipeline_options(raw.get("pipeline"), problems)
    if not stages and not problems:
        problems.append("'stages:' is empty; add at least one stage with a notebook")
    if problems and (strict or not stages):
        raise SpecError(source, problems)
    return PipelineSpec(root=root, stages=stages, raw=dict(raw), problems=tuple(problems))


def load_spec(
    root: str | os.PathLike[str],
    *,
    strict: bool = True,
    pins: Mapping[str, Mapping[str, Any]] | None = None,
) -> PipelineSpec:
    """Read ``<root>/nbops.yaml``; raise :class:`SpecError` when it is missing or malformed
    (with ``strict=False``, shape problems are left for :func:`~nbops.pipeline.validate`)."""
    import yaml

    from nbops.pipeline._yaml import DuplicateKeyError, yaml_load

    path = Path(root) / SPEC_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), [f"no {SPEC_FILE} here; create one with `nbops init`"]) from None
    try:
        raw = yaml_load(text)
    except DuplicateKeyError as exc:
        raise SpecError(
            str(path), [f"{exc}: each stage, and each key of a stage, may appear only once"]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_spec(raw, Path(root), str(path), strict=strict, pins=pins)
