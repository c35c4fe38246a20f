"""Outputs written in one step: a reader never sees a partial file or SavedModel directory,
and nothing that exists is replaced unless asked.

Shared by the strip tool and `export.to_saved_model`; it imports neither TensorFlow nor
numpy, so the tool checks its output before loading them.
"""

import os
import secrets
import shutil


def _exists_error(path):
    return FileExistsError(f"{path} already exists; pass --overwrite to replace it, or choose "
                           "another --output_dir/--filename")


class OutputFile:
    """A file written in one step, so a reader never sees a partial file.

    A temporary file beside `path` is created at once, with the permissions the umask gives,
    so a missing directory permission shows before any slow work; `commit` fills it and
    renames it to `path`. Leaving the `with` block removes whatever was not committed.

    Raises:
      FileExistsError: if `path` exists and `overwrite` is False.
      OSError: if the output directory is a file or cannot be written.
    """

    def __init__(self, path, overwrite=False):
        self.path = path
        self._overwrite = overwrite
        self._fd = None
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.isfile(directory):
            raise NotADirectoryError(f"the output directory {directory} is a file")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a directory; choose another --filename")
        if os.path.exists(path) and not overwrite:
            raise _exists_error(path)
        self._temp = os.path.join(
            directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            os.makedirs(directory, exist_ok=True)
            self._fd = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as error:
            raise OSError(f"cannot write to the output directory {directory}: "
                          f"{error.strerror}") from None

    def commit(self, data):
        """Writes `data` and moves it to `path` (replacing it only with `overwrite`)."""
        with os.fdopen(self._fd, "wb") as temp_file:
            self._fd = None
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        if self._overwrite:
            os.replace(self._temp, self.path)
        else:
            try:
                os.link(self._temp, self.path)  # fails if `path` exists, with no window for a race
            except FileExistsError:
                raise _exists_error(self.path) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._fd is not None:
            os.close(self._fd)
        if os.path.exists(self._temp):
            os.remove(self._temp)


class OutputDirectory:
    """A directory (a SavedModel) written in one step, so a reader never sees part of it.

    `temp`, an empty directory beside `path`, is created at once, with the permissions the
    umask gives; the caller fills it and `commit` renames it to `path`, replacing an existing
    directory only with `overwrite`. Leaving the `with` block removes what was not committed.

    Raises:
      FileExistsError: if `path` exists and `overwrite` is False, or is a file.
      OSError: if the output directory is a file or cannot be written.
    """

    def __init__(self, path, overwrite=False):
        self.path = os.path.normpath(path)
        self._overwrite = overwrite
        directory = os.path.dirname(os.path.abspath(self.path))
        if os.path.isfile(directory):
            raise NotADirectoryError(f"the output directory {directory} is a file")
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise FileExistsError(f"{self.path} is a file, not a directory; choose another "
                                  "--filename")
        if os.path.lexists(self.path) and not overwrite:
            raise _exists_error(self.path)
        self.temp = os.path.join(
            directory, f".{os.path.basename(self.path)}.{secrets.token_hex(4)}.tmp")
        self._replaced = self.temp + ".old"
        try:
            os.makedirs(directory, exist_ok=True)
            os.mkdir(self.temp)
        except OSError as error:
            raise OSError(f"cannot write to the output directory {directory}: "
                          f"{error.strerror}") from None

    def commit(self):
        """Moves `temp` to `path`; an existing `path` (only with `overwrite`) is moved aside
        first and deleted after."""
        if not os.path.lexists(self.path):
            # A directory made since the check would be replaced if empty, else an error.
            os.rename(self.temp, self.path)
            return
        if not self._overwrite:
            raise _exists_error(self.path)
        os.rename(self.path, self._replaced)
        try:
            os.rename(self.temp, self.path)
        except OSError:
            os.rename(self._replaced, self.path)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for leftover in (self.temp, self._replaced):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover)


def directory_size(path):
    """Total bytes of the files under `path`."""
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)
