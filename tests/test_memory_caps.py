"""A gzip bomb inside a zip is refused before the loading process grows by much more than the cap.

The load runs in a child process that resets and then reads its own peak resident size (VmHWM in
``/proc/self/status``), so the measure is the load's alone. The bomb: ``corpus.jsonl.gz`` of 256
concatenated gzip members, each one MiB of blank text (about 260 KB on disk, 256 MiB decompressed).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic import write_toy, zip_folder

MIB = 2**20
CAP = 8 * MIB
BOMB_MIB = 256
#: What the child may grow by besides the cap: the decompression buffer, zip reads, the arrays.
MARGIN = 40 * MIB

CHILD = r"""
import json, sys
from nudge_core import files
from nudge_core.data import load_dataset
from nudge_core.errors import DataError

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) * 1024 for l in fh if l.startswith(key + ":"))

archive, max_bytes, default_cap = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
if default_cap is not None:
    files.MAX_GZ_BYTES = default_cap
try:
    with open("/proc/self/clear_refs", "w") as fh:  # VmHWM := VmRSS now
        fh.write("5")
except OSError:
    pass
before = status("VmRSS")
try:
    load_dataset(archive, max_bytes=max_bytes)
    message = None
except DataError as exc:
    message = str(exc)
print(json.dumps({"message": message, "growth": status("VmHWM") - before}))
"""


@pytest.fixture(scope="module")
def bomb_zip(tmp_path_factory) -> Path:
    folder = write_toy(tmp_path_factory.mktemp("bomb") / "toy", n_records=50, n_queries=20)
    (folder / "corpus.jsonl").unlink()
    one = gzip.compress(b" " * MIB)
    assert len(gzip.decompress(one)) == MIB and len(one) < 2048
    (folder / "corpus.jsonl.gz").write_bytes(one * BOMB_MIB)
    archive = folder.parent / "bomb.zip"
    archive.write_bytes(zip_folder(folder))
    assert archive.stat().st_size < 600_000
    return archive


def load_in_child(archive: Path, max_bytes: int | None, default_cap: int | None) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(archive), json.dumps(max_bytes),
                           json.dumps(default_cap)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("max_bytes,default_cap", [(CAP, None), (None, CAP)],
                         ids=["max_bytes", "default-cap"])
def test_gzip_bomb_in_zip_refused_within_cap(bomb_zip, max_bytes, default_cap):
    out = load_in_child(bomb_zip, max_bytes, default_cap)
    assert out["message"] is not None, "the bomb was loaded"
    assert "bomb.zip (member toy/corpus.jsonl.gz)" in out["message"]
    assert "decompresses to more than 8.0 MiB" in out["message"]
    assert out["growth"] < CAP + MARGIN, f"grew by {out['growth'] / MIB:.0f} MiB"
