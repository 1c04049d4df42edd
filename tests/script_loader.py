"""Load the repository's scripts (``benchmarks/``, ``examples/``) as modules, to test them through their functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(path: Path) -> ModuleType:
    """Import the script at ``path`` under its file name (registered, so its dataclasses resolve their module)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
