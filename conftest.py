"""Doctest collection skips the modules whose optional extra is not installed.

``pytest --doctest-modules`` imports every module under ``src/incidentiq``;
the ones below need an extra (``train``, ``server`` or ``llm``), and their
tests skip themselves with ``pytest.importorskip`` when it is missing.
"""

from __future__ import annotations

import importlib.util

OPTIONAL_MODULES = {
    "src/incidentiq/train.py": ("torch", "stable_baselines3", "sb3_contrib"),
    "src/incidentiq/server/app.py": ("fastapi", "uvicorn"),
    "src/incidentiq/server/openenv_adapter.py": ("openenv",),
    "src/incidentiq/agents/llm.py": ("openai",),
}

collect_ignore = [
    path
    for path, modules in OPTIONAL_MODULES.items()
    if any(importlib.util.find_spec(module) is None for module in modules)
]
