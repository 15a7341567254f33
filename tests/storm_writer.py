"""An installer storm: unpack a CUDA-toolkit-shaped tree of N small files, as fast as possible.

    python tests/storm_writer.py DEST FILES [DIRS]

Creates DEST (which must not exist) with DIRS subdirectories spread over a toolkit's layout
(bin, include/..., targets/x86_64-linux/lib, nvvm/...) and FILES files among them, the
version.json last, as installers do. Prints one JSON line: files, dirs, seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time

_TOP = ("bin", "include", "targets/x86_64-linux/lib", "targets/x86_64-linux/include", "nvvm")


def layout(dest: str, dirs: int) -> list[str]:
    """`dirs` directories, nested two deep under the toolkit's top-level ones."""
    found = []
    for index in range(dirs):
        top = _TOP[index % len(_TOP)]
        found.append(os.path.join(dest, top, f"part{index // 10}", f"sub{index % 10}"))
    return found


def write(dest: str, files: int, dirs: int) -> dict[str, float]:
    start = time.monotonic()
    os.mkdir(dest)
    places = layout(dest, dirs)
    for place in places:
        os.makedirs(place, exist_ok=True)
    payload = b"x" * 64
    for index in range(files - 1):
        with open(os.path.join(places[index % len(places)], f"file{index}.h"), "wb") as handle:
            handle.write(payload)
    with open(os.path.join(dest, "version.json"), "w", encoding="utf-8") as handle:
        handle.write('{"cuda": {"name": "CUDA SDK", "version": "12.9.1"}}\n')
    return {"files": files, "dirs": len(places), "seconds": time.monotonic() - start}


def main(argv: list[str]) -> int:
    dest, files = argv[1], int(argv[2])
    dirs = int(argv[3]) if len(argv) > 3 else 200
    print(json.dumps(write(dest, files, dirs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
