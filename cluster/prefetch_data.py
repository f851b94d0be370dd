"""Download the paper preset's image data sets into one directory, once per node or image.

The pipeline never downloads on its own (a missing data set is an error that says what to run), so
cluster nodes fetch the files here, at setup time, into the directory later passed as
``--data-root``. Files already present are kept; a finished run is a no-op.

    python cluster/prefetch_data.py --data-root /home/ray/hyperrep_data
    python cluster/prefetch_data.py --data-root /home/ray/hyperrep_data mnist cifar10
    python cluster/prefetch_data.py --data-root /home/ray/hyperrep_data --prune   # for images

``--prune`` deletes what the pipeline never reads once everything is verified: the downloaded
archives and STL-10's unlabeled split (about 5 GB together), e.g. to keep a container image small.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PAPER_DATASETS = ("mnist", "svhn", "cifar10", "stl10")
# Downloaded but never read by hyperrep_ray.data.images (it reads the extracted files, train/test only).
PRUNABLE_SUFFIXES = (".tar.gz", ".gz", ".zip")
PRUNABLE_FILES = ("stl10_binary/unlabeled_X.bin",)


def prune(root: Path) -> int:
    """Delete archives and unused splits under ``root``; returns the bytes freed."""
    freed = 0
    victims = [p for p in root.rglob("*") if p.is_file() and p.name.endswith(PRUNABLE_SUFFIXES)]
    victims += [root / rel for rel in PRUNABLE_FILES if (root / rel).is_file()]
    for path in victims:
        freed += path.stat().st_size
        path.unlink()
    return freed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(PAPER_DATASETS), help="default: the paper's four")
    parser.add_argument("--data-root", required=True, help="directory to download into (torchvision layouts)")
    parser.add_argument("--attempts", type=int, default=3, help="tries per data set (mirrors can be flaky)")
    parser.add_argument("--prune", action="store_true", help="then delete archives and unused splits")
    args = parser.parse_args(argv)

    from hyperrep_ray.data.images import load_dataset

    for name in args.datasets:
        for attempt in range(1, args.attempts + 1):
            try:
                # download=True fetches only what is missing; loading verifies the files are readable.
                data = load_dataset(name, data_root=args.data_root, download=True)
            except Exception as exc:  # network errors come in many types; retry, then fail loudly
                if attempt == args.attempts:
                    print(f"prefetch: {name} failed after {attempt} attempts: {exc}", file=sys.stderr)
                    return 1
                print(f"prefetch: {name} attempt {attempt} failed ({exc}); retrying", file=sys.stderr)
                time.sleep(10 * attempt)
            else:
                print(f"prefetch: {name} ready ({len(data.train_y)} train / {len(data.test_y)} test images)")
                break
    if args.prune:
        freed = prune(Path(args.data_root).expanduser())
        print(f"prefetch: pruned {freed / 2**30:.2f} GiB of archives and unused splits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
