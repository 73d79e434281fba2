"""Lay out the `coe` package as one folder tree of symlinks, for tools that walk folders.

pyproject's [tool.setuptools.package-dir] builds `coe` from several top-level folders (`agents/` is
`coe.agents`, ...), and the editable install maps them with an import hook that import-linter (grimp) and
mypy do not run. They read `build/pkgview/coe/` instead: a real folder whose entries are symlinks to the
files of `coe/` and to each mapped folder, so a path in their output opens the real file.

    python tools/pkgview.py [DEST]      # DEST defaults to build/pkgview; prints DEST

Run it before each lint: it is idempotent and takes milliseconds, and it drops links to files that are gone.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "coe"
SKIP = {"__pycache__"}


def package_dirs(pyproject: Path) -> dict[str, Path]:
    """Each `coe.X` subpackage that lives in its own folder, with that folder (from package-dir)."""
    mapping = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
    if mapping.get(PACKAGE) != PACKAGE:
        raise SystemExit(f"error: {pyproject} must map {PACKAGE!r} to the folder {PACKAGE!r}")
    dirs = {}
    for name, folder in mapping.items():
        if name == PACKAGE:
            continue
        parent, _, child = name.rpartition(".")
        if parent != PACKAGE:
            raise SystemExit(f"error: {pyproject}: package-dir {name!r} is not a direct subpackage of {PACKAGE}")
        dirs[child] = ROOT / folder
    return dirs


def wanted_links(pyproject: Path) -> dict[str, Path]:
    """Entry name inside the view's `coe/` -> the real file or folder it points to."""
    links = {p.name: p for p in sorted((ROOT / PACKAGE).iterdir()) if p.name not in SKIP}
    for child, folder in package_dirs(pyproject).items():
        if not (folder / "__init__.py").is_file():
            raise SystemExit(f"error: {folder} (coe.{child}) has no __init__.py")
        if child in links:
            raise SystemExit(f"error: coe.{child} is both {links[child]} and {folder}")
        links[child] = folder
    return links


def build(dest: Path) -> Path:
    view = dest / PACKAGE
    view.mkdir(parents=True, exist_ok=True)
    links = wanted_links(ROOT / "pyproject.toml")
    for entry in view.iterdir():
        if entry.name not in links or not entry.is_symlink() or entry.resolve() != links[entry.name]:
            if entry.is_dir() and not entry.is_symlink():
                raise SystemExit(f"error: {entry} is a real folder; remove {dest} and run again")
            entry.unlink()
    for name, target in links.items():
        link = view / name
        if not link.is_symlink():
            # relative, so the view still works when the checkout moves
            link.symlink_to(os.path.relpath(target, view))
    return dest


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: pkgview.py [DEST]", file=sys.stderr)
        return 2
    dest = Path(argv[0]) if argv else ROOT / "build" / "pkgview"
    print(build(dest.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
