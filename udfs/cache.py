"""Where the project caches what it downloads, builds and trains: one directory, outside the clone."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """LLM_AUDIT_CACHE, else ~/.cache/llm-audit; a leading ~ is expanded either way."""
    return Path(os.environ.get("LLM_AUDIT_CACHE", Path.home() / ".cache" / "llm-audit")).expanduser()
