"""Session-wide test settings.

Derived data (synthetic dataset exports, feature caches) goes to `$WORKBENCH_CACHE`, by default the user's
`~/.cache/reid-workbench`. A test session must not write there: unless the caller set `WORKBENCH_CACHE` explicitly
(e.g. to reuse exports across sessions: `WORKBENCH_CACHE=/tmp/wb-cache pytest`), the session uses a fresh temporary
folder, removed at the end. It is set in the environment, so subprocesses (the CLI, notebook kernels, torchrun
workers) inherit it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_OWNED: list[str] = []


def pytest_configure(config) -> None:
    if not os.environ.get("WORKBENCH_CACHE"):
        path = tempfile.mkdtemp(prefix="workbench-test-cache-")
        os.environ["WORKBENCH_CACHE"] = path
        _OWNED.append(path)


def pytest_unconfigure(config) -> None:
    while _OWNED:
        path = _OWNED.pop()
        if os.environ.get("WORKBENCH_CACHE") == path:
            del os.environ["WORKBENCH_CACHE"]
        shutil.rmtree(path, ignore_errors=True)
