"""The human parts of a model card: the ``card:`` section of ``<project root>/nbops.yaml``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.config import find_project_root
from nbops.errors import InvalidValueError

logger = logging.getLogger(__name__)

CONFIG_FILE = "nbops.yaml"


@dataclass(frozen=True)
class CardConfig:
    """What only people can say about a model. Every field is optional.

    In ``nbops.yaml``::

        card:
          description: Classifies iris flowers from four measurements.
          license: apache-2.0
          owners: [Ada Lovelace <ada@example.org>]
          intended_use: Teaching.
          out_of_scope_use: Anything botanical that matters.
          limitations: Trained on 150 flowers.
          ethical_considerations: None known.
          tags: [teaching]
          task: {type: tabular-classification, name: Iris species}
          evaluation_dataset: iris-test   # the dataset the metrics were measured on
          evaluation_metrics: [accuracy]  # which logged metrics are evaluation results
          evaluation_split: test
          hub_datasets: {iris-train: scikit-learn/iris}   # nbops datasets that are Hub datasets

    Evaluation results recorded with ``log_model(..., evaluation=...)`` take precedence.
    """

    description: str | None = None
    license: str | None = None
    owners: tuple[str, ...] = ()
    intended_use: str | None = None
    out_of_scope_use: str | None = None
    limitations: str | None = None
    ethical_considerations: str | None = None
    tags: tuple[str, ...] = ()
    task_type: str | None = None
    task_name: str | None = None
    evaluation_dataset: str | None = None
    library_name: str | None = None
    evaluation_metrics: tuple[str, ...] = ()
    evaluation_split: str | None = None
    hub_datasets: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


_TEXT = (
    "description",
    "license",
    "intended_use",
    "out_of_scope_use",
    "limitations",
    "ethical_considerations",
    "evaluation_dataset",
    "library_name",
    "evaluation_split",
)


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise InvalidValueError(f"card.{key} in {CONFIG_FILE} must be a string or a list of strings")


def parse_card_config(section: Any, source: str = CONFIG_FILE) -> CardConfig:
    """Validate a ``card:`` mapping."""
    if section is None:
        return CardConfig()
    if not isinstance(section, dict):
        raise InvalidValueError(f"the card: section of {source} must be a mapping of fields")
    values: dict[str, Any] = {}
    for key in _TEXT:
        value = section.get(key)
        if value is not None and not isinstance(value, (str, int, float)):
            raise InvalidValueError(f"card.{key} in {source} must be text")
        values[key] = None if value is None else str(value).strip()
    task = section.get("task")
    if isinstance(task, str):
        values["task_type"] = task
    elif isinstance(task, dict):
        values["task_type"] = task.get("type")
        values["task_name"] = task.get("name")
    elif task is not None:
        raise InvalidValueError(f"card.task in {source} must be a string or {{type, name}}")
    values["owners"] = _strings(section.get("owners"), "owners")
    values["tags"] = _strings(section.get("tags"), "tags")
    values["evaluation_metrics"] = _strings(section.get("evaluation_metrics"), "evaluation_metrics")
    hub = section.get("hub_datasets") or {}
    if not isinstance(hub, dict) or not all(isinstance(v, str) for v in hub.values()):
        raise InvalidValueError(
            f"card.hub_datasets in {source} must map nbops dataset names to Hub dataset ids"
        )
    values["hub_datasets"] = {str(k): v for k, v in hub.items()}
    known = {*_TEXT, "task", "owners", "tags", "evaluation_metrics", "hub_datasets"}
    values["extra"] = {k: v for k, v in section.items() if k not in known}
    if values["extra"]:
        logger.warning(
            "nbops ignores unknown card fields in %s: %s", source, sorted(values["extra"])
        )
    return CardConfig(**values)


def load_card_config(root: str | os.PathLike[str] | None = None) -> CardConfig:
    """Read the ``card:`` key of ``<project root>/nbops.yaml`` (other keys are ignored)."""
    import yaml

    path = Path(root) if root is not None else find_project_root()
    config = path / CONFIG_FILE
    if not config.is_file():
        return CardConfig()
    try:
        document = yaml.safe_load(config.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidValueError(f"{config} is not valid YAML: {exc}") from exc
    if document is None:
        return CardConfig()
    if not isinstance(document, dict):
        raise InvalidValueError(f"{config} must hold a mapping (keys such as card: and stages:)")
    return parse_card_config(document.get("card"), str(config))
