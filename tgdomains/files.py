"""Opening files that tgdomains did not write itself this moment: run directories, goal, problem and case files,
caches. Each may come from someone else, so each is read

- never through a symbolic link (``O_NOFOLLOW``: a link planted in a run directory cannot make tgdomains read,
  truncate or overwrite a file elsewhere),
- only when it is a regular file (a folder, a FIFO or a device is refused before anything waits on it),
- only up to a stated size (a file is never read whole before its size is known),
- and YAML without aliases (`load_yaml`: an alias bomb expands exponentially; no file of ours needs one).

Every refusal is an `UnsafeFileError`: one line that names the file and what is wrong with it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

MIB = 1 << 20


class UnsafeFileError(ValueError):
    """A file that is refused: a link, not a regular file, too large, or not the text it should be."""


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o644, *,
                 what: str = "file") -> int:
    """A descriptor of the regular file `path` (created when `flags` has O_CREAT), opened without following a
    link in its last component. Raises `UnsafeFileError` for a link, a folder or any other non-regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and os.path.islink(path)):
            raise UnsafeFileError(f"{what} {path} is a symbolic link; tgdomains does not follow links here "
                                  "(replace it with the file itself)") from None
        if exc.errno == errno.EISDIR:
            raise UnsafeFileError(f"{what} {path} is a folder, not a file") from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeFileError(f"{what} {path} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str | os.PathLike[str], limit: int, *, what: str = "file") -> bytes:
    """The whole regular file `path` (no link followed), or `UnsafeFileError` when it holds more than `limit`
    bytes (checked before reading, and again while reading, for a file that grows meanwhile)."""
    fd = open_regular(path, what=what)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise UnsafeFileError(f"{what} {path} is {size:,} bytes, over the limit of {limit:,}")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(limit + 1 - total, 1 << 20) or 1)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UnsafeFileError(f"{what} {path} grew past the limit of {limit:,} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int, *, what: str = "file") -> str:
    """`read_bytes` decoded as UTF-8; undecodable bytes are an `UnsafeFileError` naming their offset."""
    data = read_bytes(path, limit, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeFileError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


MAX_YAML_DIGITS = 4300  # an integer's digits (Python's default limit)
MAX_YAML_DEPTH = 100  # nested collections; deeper is refused before the (C) composer recurses into it


def load_yaml(text: str, where: str, *, limit: int = 4 * MIB, max_nodes: int = 100_000) -> Any:
    """YAML text as plain data (mappings, lists, strings, numbers, booleans, null), with bounds: at most `limit`
    characters, no aliases (``*name``), at most `max_nodes` values nested at most MAX_YAML_DEPTH deep. A mistake is
    an `UnsafeFileError` ``WHERE, line N: what`` whose text never quotes the document, so a hostile file cannot
    make it long."""
    return compose_yaml(text, where, limit=limit, max_nodes=max_nodes)[0]


def compose_yaml(text: str, where: str, *, limit: int = 4 * MIB, max_nodes: int = 100_000) -> tuple[Any, Any]:
    """`load_yaml`'s data and the YAML node tree it was built from (for messages that name a line).

    Two passes of yaml's safe loader (libyaml's when installed): the first reads only the event stream and refuses
    an alias, a value past `max_nodes` or a collection past MAX_YAML_DEPTH, so the second, which builds the nodes
    and the data, only ever sees a document of bounded size."""
    import yaml

    if len(text) > limit:
        raise UnsafeFileError(f"{where}: {len(text):,} characters of YAML, over the limit of {limit:,}")
    safe_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = None
    try:
        _check_events(yaml.parse(text, Loader=safe_loader), max_nodes)
        loader = safe_loader(text)
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "unreadable").split())[:200]
        raise UnsafeFileError(f"{where}{line}: not valid YAML ({problem})") from None
    except yaml.YAMLError as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise UnsafeFileError(f"{where}: not valid YAML ({first})") from None
    except RecursionError:
        raise UnsafeFileError(f"{where}: YAML nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an integer over Python's digit limit
        raise UnsafeFileError(f"{where}: not valid YAML ({str(exc)[:200]})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_events(events: Any, max_nodes: int) -> None:
    """Refuse (as a yaml ComposerError at the event's line) an alias, too many values, or too deep a nesting."""
    import yaml

    nodes = depth = 0
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            problem = "aliases (*name) are not accepted"
        elif isinstance(event, yaml.ScalarEvent) and event.implicit[0] and len(event.value) > MAX_YAML_DIGITS \
                and event.value.lstrip("+-").isdigit():
            # refused here, not left to Python's digit limit: that is process-wide, and something may have lifted it
            problem = f"an integer of {len(event.value):,} digits (at most {MAX_YAML_DIGITS:,})"
        elif isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            nodes += 1
            depth += not isinstance(event, yaml.ScalarEvent)
            if nodes <= max_nodes and depth <= MAX_YAML_DEPTH:
                continue
            problem = f"more than {max_nodes:,} values" if nodes > max_nodes else \
                f"nested more than {MAX_YAML_DEPTH} deep"
        else:
            depth -= isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent))
            continue
        raise yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def first_non_folder(folder: str | os.PathLike[str]) -> Path | None:
    """The first existing path on the way to `folder` that is not a folder (what keeps it from being created)."""
    path = Path(folder)
    for candidate in reversed([path, *path.parents]):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None
