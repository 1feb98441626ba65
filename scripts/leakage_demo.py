"""Leakage demonstration for teaching: the same CNN trained twice on the same folder — once with a random
file-level split (copies of one report can land in training *and* test), once split by duplicate group — so the
inflated accuracy of the leaky split can be seen next to the honest one (Compare page, "Leakage demonstration").

Writes the runs ``leakdemo-file-<tag>`` and ``leakdemo-group-<tag>`` into the models folder (default ``models/`` or
``$ECG_INSIGHT_MODELS``) and a ``leakage_demo.json`` summary into both. Same options as
``python -m ecg_core leakage-demo`` (this script calls it). Run from the repository root, e.g.::

    python scripts/leakage_demo.py --data ../shared/data/mendeley-dev --height 96 --width 160 --epochs 15 --seed 0
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecg_core.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["leakage-demo", *sys.argv[1:]]))
