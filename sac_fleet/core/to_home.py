"""``to_home/``: the files beside a spec that are copied into the agent's home, read safely.

Symlinks that lead outside, symlinked directories, special files and more than
10 MB in total are refused, each with one ``SpecError`` line naming the path.
"""

from __future__ import annotations

from pathlib import Path

from sac_node.protocol.errors import SpecError

TO_HOME_DIR = "to_home"
TO_HOME_MAX_BYTES = 10 * 1024 * 1024


def read_to_home(directory, max_bytes: int = TO_HOME_MAX_BYTES) -> dict[str, bytes]:
    """Files under ``directory`` as relative posix path -> bytes ({} if it does not exist).

    Refuses symlinks that lead outside it, symlinked directories, special files
    and more than ``max_bytes`` in total, each with a SpecError naming the path.
    """
    directory = Path(directory)
    if not directory.exists() and not directory.is_symlink():
        return {}
    root = directory.resolve()
    if not root.is_dir():
        raise SpecError("%s: not a directory (to_home/ holds files copied into the agent's home)" % directory)
    files, total = {}, 0
    for path in sorted(_walk_files(root, directory)):
        relative = path.relative_to(root).as_posix()
        shown = "%s/%s" % (directory, relative)
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                raise SpecError("%s: symlink leads outside %s/ (copy the file in instead)" % (shown, TO_HOME_DIR))
            if not target.exists():
                raise SpecError("%s: broken symlink (remove it)" % shown)
        if not path.is_file():
            raise SpecError("%s: not a regular file (to_home/ may hold only files and directories)" % shown)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SpecError("%s: cannot read: %s" % (shown, exc.strerror or exc)) from None
        total += len(content)
        if total > max_bytes:
            raise SpecError("%s: more than %d MB in total (keep to_home/ small: CLAUDE.md, settings, MCP config)"
                            % (directory, max_bytes // (1024 * 1024)))
        files[relative] = content
    return files


def _walk_files(root: Path, shown_dir: Path):
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(current.iterdir())
        except OSError as exc:
            raise SpecError("%s: cannot list: %s" % (current, exc.strerror or exc)) from None
        for entry in entries:
            if entry.is_symlink() and entry.is_dir():
                raise SpecError("%s/%s: symlinked directories are not copied (copy the files in instead)"
                                % (shown_dir, entry.relative_to(root).as_posix()))
            if entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
            else:
                yield entry
