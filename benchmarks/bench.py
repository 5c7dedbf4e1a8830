"""What the benchmark scripts share: the project on the import path, and the MNIST folder flag."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the script's docstring as its help, and --data-dir (the folder that
    holds MNIST/raw/: $MNIST_DATA_DIR, else the shared copy beside the project)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    return p
