"""Compiles the core's hot modules (``atp.native.COMPILED``) with mypyc at install.

Everything else is in pyproject.toml. mypyc comes with mypy, pinned in the lock (extra
``build``); gcc does the rest. ``AVAIL_NATIVE=0`` at install skips the compilation, and at
run time makes an install that has the compiled modules run the sources (``atp.native``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def _native_module_list() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("_avail_native", HERE / "atp" / "native.py")
    assert spec is not None and spec.loader is not None  # noqa: S101
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.COMPILED)


def _extensions() -> list[object]:
    if os.environ.get("AVAIL_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        print("AVAIL_NATIVE=0: installing the pure-Python core, nothing compiled", file=sys.stderr)
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 - only when compiling

    paths = [name.replace(".", "/") + ".py" for name in _native_module_list()]
    return mypycify(paths, opt_level="3", debug_level="0")  # type: ignore[no-any-return]


setup(ext_modules=_extensions())
