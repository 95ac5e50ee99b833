"""Model cards built from tracked evidence, with Hugging Face-compatible front matter."""

from __future__ import annotations

from nbops.cards._card import ModelCard, card, write_pipeline_card
from nbops.cards._config import CardConfig, load_card_config, parse_card_config

__all__ = [
    "CardConfig",
    "ModelCard",
    "card",
    "load_card_config",
    "parse_card_config",
    "write_pipeline_card",
]
