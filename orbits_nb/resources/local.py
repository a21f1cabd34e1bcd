"""Example resources on the local disk: :class:`LocalFile` and :class:`LocalDirectory`.

They double as the documented example of writing a resource: identity from the
path, desired state from the arguments, ``observe()`` reading the disk, and
``create``/``update`` writing ``self.target`` (the state being applied).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from orbits_nb.core.drift import Comparison, FieldDiff
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.resources.base import Resource
from orbits_nb.resources.errors import ResourceError


def absolute(path: Any, what: str) -> str:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise InvalidArgument(f"{what} needs a path (str or Path), got {path!r}")
    return str(Path(path).expanduser().absolute())


def mode_text(mode: Any, what: str) -> str | None:
    """``0o644``, ``"644"``, ``"0644"`` or ``"0o644"`` -> ``"0644"``."""
    if mode is None:
        return None
    try:
        value = mode if isinstance(mode, int) and not isinstance(mode, bool) else \
            int(str(mode).removeprefix("0o"), 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o7777:
        raise InvalidArgument(f"{what} mode must be octal like 0o644 or '0644', got {mode!r}")
    return f"{value:04o}"


def write_atomic(path: Path, data: bytes, mode: str | None) -> None:
    """Replace ``path`` in one rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if mode is not None:
            os.chmod(tmp, int(mode, 8))
        elif path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


class LocalFile(Resource):
    """A text file with the given content (and, if given, permission bits).

    >>> cfg = LocalFile("/srv/app/config.yaml", content="debug: false\\n", mode=0o640)
    >>> await self.do("config", cfg)      # doctest: +SKIP
    {'path': '/srv/app/config.yaml', 'url': 'file:///srv/app/config.yaml'}
    """

    server_managed = ("size", "mtime")

    def __init__(self, path: str | os.PathLike[str], content: str = "", *,
                 mode: int | str | None = None) -> None:
        if not isinstance(content, str):
            raise InvalidArgument(f"LocalFile content must be a str, got "
                                  f"{type(content).__name__}")
        super().__init__(path=absolute(path, "LocalFile"), content=content,
                         mode=mode_text(mode, "LocalFile"))

    @property
    def path(self) -> Path:
        return Path(self.args["path"])

    def identity(self) -> str:
        return str(self.args["path"])

    def comparison(self) -> Comparison:
        ignore = ("size", "mtime") if self.args.get("mode") else ("size", "mtime", "mode")
        return Comparison(ignore=ignore)

    def desired(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"content": self.args["content"]}
        if self.args.get("mode"):
            spec["mode"] = self.args["mode"]
        return spec

    def observe(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        if not self.path.is_file():
            raise ResourceError(f"{self.path} exists but is not a file", key=self.key())
        info = self.path.stat()
        return {"content": self.path.read_bytes(), "mode": f"{stat.S_IMODE(info.st_mode):04o}",
                "size": info.st_size, "mtime": info.st_mtime}

    def create(self) -> dict[str, str]:
        target = self.target
        write_atomic(self.path, str(target["content"]).encode(), target.get("mode"))
        return {"path": str(self.path), "url": self.path.as_uri()}

    def update(self, diff: list[FieldDiff]) -> None:
        target = self.target
        if any(d.path == "content" for d in diff):
            write_atomic(self.path, str(target["content"]).encode(), target.get("mode"))
        elif target.get("mode"):
            os.chmod(self.path, int(target["mode"], 8))

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def output(self, actual: Any) -> dict[str, str]:
        return {"path": str(self.path), "url": self.path.as_uri()}


def _relative(name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith("/") or \
            ".." in PurePosixPath(name).parts or "\\" in name:
        raise InvalidArgument(f"LocalDirectory file names must be relative paths inside the "
                              f"directory (no '..'), got {name!r}")
    return str(PurePosixPath(name))


class LocalDirectory(Resource):
    """A directory holding the given files (``{relative path: text}``).

    With ``exclusive=True`` any other file in it is drift (and reconcile removes it);
    otherwise other files are left alone. Uninstall removes the managed files and the
    directory when nothing else is left in it.
    """

    def __init__(self, path: str | os.PathLike[str], files: dict[str, str] | None = None, *,
                 mode: int | str | None = None, exclusive: bool = False) -> None:
        files = dict(files or {})
        if not all(isinstance(v, str) for v in files.values()):
            raise InvalidArgument("LocalDirectory files must map relative paths to text")
        super().__init__(path=absolute(path, "LocalDirectory"),
                         files={_relative(k): v for k, v in files.items()},
                         mode=mode_text(mode, "LocalDirectory"), exclusive=bool(exclusive))

    @property
    def path(self) -> Path:
        return Path(self.args["path"])

    def identity(self) -> str:
        return str(self.args["path"])

    def comparison(self) -> Comparison:
        return Comparison(ignore=() if self.args.get("mode") else ("mode",))

    def desired(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"files": dict(self.args["files"])}
        if self.args.get("mode"):
            spec["mode"] = self.args["mode"]
        return spec

    def _present(self) -> list[str]:
        found = []
        for folder, _dirs, names in os.walk(self.path):
            for name in names:
                found.append(Path(folder, name).relative_to(self.path).as_posix())
        return sorted(found)

    def observe(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        if not self.path.is_dir():
            raise ResourceError(f"{self.path} exists but is not a directory", key=self.key())
        names = self._present() if self.args["exclusive"] else list(self.args["files"])
        files = {n: (self.path / n).read_bytes() for n in names if (self.path / n).is_file()}
        mode = f"{stat.S_IMODE(self.path.stat().st_mode):04o}"
        return {"files": files, "mode": mode}

    def create(self) -> dict[str, str]:
        self.path.mkdir(parents=True, exist_ok=True)
        self._write(self.target, list(self.target["files"]))
        return {"path": str(self.path), "url": self.path.as_uri()}

    def update(self, diff: list[FieldDiff]) -> None:
        target = self.target
        changed = [n for n in target["files"] if (self.path / n).is_file() is False or
                   (self.path / n).read_text(errors="replace") != target["files"][n]]
        self._write(target, changed)
        if self.args["exclusive"]:
            for name in set(self._present()) - set(target["files"]):
                (self.path / name).unlink()

    def _write(self, target: dict[str, Any], names: list[str]) -> None:
        if target.get("mode"):
            os.chmod(self.path, int(target["mode"], 8))
        for name in names:
            write_atomic(self.path / name, str(target["files"][name]).encode(), None)

    def delete(self) -> None:
        if not self.path.exists():
            return
        if self.args["exclusive"]:
            shutil.rmtree(self.path)
            return
        for name in self.args["files"]:
            (self.path / name).unlink(missing_ok=True)
        for folder, _dirs, _names in sorted(os.walk(self.path), reverse=True):
            if not os.listdir(folder):
                os.rmdir(folder)
        if self.path.exists():
            raise ResourceError(
                f"{self.path} still holds files it does not manage ({self._present()[:5]}); "
                "remove them, or declare the directory exclusive=True", key=self.key())

    def output(self, actual: Any) -> dict[str, str]:
        return {"path": str(self.path), "url": self.path.as_uri()}
