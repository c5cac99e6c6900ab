"""Crash-safe storage of labelled frames while a ``fit-density`` run is in progress.

Next to ``OUT.h5`` the run keeps ``OUT.h5.parts/``:

    identity.json          settings + geometry source of the run (checked on every resume)
    lock                   flock'ed by the running process (a second run is refused)
    frame_0000042.npz      one labelled frame, written to a temporary name and renamed
    failed_0000043.json    a frame that failed, with the reason (retried by the next run)

A file in the directory is therefore either complete or absent: ``kill -9`` at any moment loses
at most the frames in flight, and rerunning the same command completes the dataset.  When every
frame is labelled, the HDF5 file is assembled (atomically, see :mod:`densnet_cli.data.hdf5`) and
the directory removed.  Only the coordinating process writes here, never the workers.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import numpy as np

from densnet_cli.data.atomic import atomic_output
from densnet_cli.errors import InputError


def _atomic_write(path: Path, write) -> None:
    """``write(file)`` to a temporary file, flushed to disk, then renamed to ``path``."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def identity_differences(expected: dict, found: dict, prefix: str = "") -> list[str]:
    """Keys (dotted paths) whose values differ between two identity dicts."""
    out = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += identity_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


class PartStore:
    """The ``OUT.h5.parts`` directory of one run."""

    def __init__(self, output: Path):
        """Refer to the parts directory of ``output`` (nothing is created yet)."""
        self.dir = output.with_name(output.name + ".parts")
        self._lock_file: object | None = None

    def exists(self) -> bool:
        """Whether an earlier run left work here."""
        return self.dir.is_dir()

    def open(self, identity: dict) -> None:
        """Create or resume the store for a run with this ``identity``; take the lock.

        Raises:
            InputError: if the store belongs to a run with other settings, or is locked.

        """
        self.dir.mkdir(parents=True, exist_ok=True)
        id_path = self.dir / "identity.json"
        if id_path.exists():
            found = json.loads(id_path.read_text())
            diff = identity_differences(identity, found)
            if diff:
                raise InputError(f"{self.dir} holds a run with different {', '.join(diff)}; "
                                 f"rerun with the same settings or delete that directory")
        else:
            _atomic_write(id_path, lambda f: f.write(json.dumps(identity, indent=1).encode()))
        lock = open(self.dir / "lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise InputError(f"another fit-density run is writing {self.dir}") from None
        self._lock_file = lock

    def done(self) -> set[int]:
        """Source indices with a labelled frame on disk."""
        return {int(p.stem.split("_")[1]) for p in self.dir.glob("frame_*.npz")}

    def put(self, record: dict) -> None:
        """Store a successfully labelled frame (and forget an earlier failure of it)."""
        idx = int(record["source_index"])
        arrays = {k: np.asarray(v) for k, v in record.items()}
        _atomic_write(self.dir / f"frame_{idx:07d}.npz",
                      lambda f: np.savez(f, allow_pickle=False, **arrays))
        (self.dir / f"failed_{idx:07d}.json").unlink(missing_ok=True)

    def put_failure(self, source_index: int, reason: str) -> None:
        """Record that a frame failed (the next run retries it)."""
        text = json.dumps({"source_index": source_index, "reason": reason}).encode()
        _atomic_write(self.dir / f"failed_{source_index:07d}.json", lambda f: f.write(text))

    def get(self, source_index: int) -> dict:
        """A stored frame as a record (arrays; scalars as Python numbers/strings)."""
        with np.load(self.dir / f"frame_{source_index:07d}.npz", allow_pickle=False) as z:
            return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}

    def failures(self) -> list[tuple[int, str]]:
        """Frames recorded as failed: (source index, reason), sorted."""
        out = []
        for p in sorted(self.dir.glob("failed_*.json")):
            d = json.loads(p.read_text())
            out.append((int(d["source_index"]), str(d["reason"])))
        return out

    def remove(self) -> None:
        """Delete the directory (after the dataset has been assembled)."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def close(self) -> None:
        """Release the lock."""
        if self._lock_file is not None:
            self._lock_file.close()  # type: ignore[attr-defined]
            self._lock_file = None
