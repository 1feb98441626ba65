"""Draw the digitised traces of a real Mendeley report over it: docs/reading_example.png (issue 14).

    python scripts/reading_example.py [IMAGE] [--out docs/reading_example.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT = (REPO.parent / "shared" / "data" / "mendeley-dev" / "ECG Images of Myocardial Infarction Patients (240x12=2880)"
           / "MI(1).jpg")


def main(argv: list[str] | None = None) -> int:
    import cv2

    from ecg_core.core.atomic import atomic_write_bytes
    from ecg_core.imaging.loader import load_image
    from ecg_core.reports.reading.digitize import digitize, draw_traces

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", default=str(DEFAULT))
    ap.add_argument("--out", default=str(REPO / "docs" / "reading_example.png"))
    args = ap.parse_args(argv)
    rgb = load_image(args.image).rgb
    dig = digitize(rgb)
    over = draw_traces(rgb, dig, thickness=max(1, int(round(dig.px_per_mm * 0.25))))
    for key, pts in dig.paths.items():
        if len(pts):
            x, y = int(pts[0, 0]), int(pts[:, 1].min())
            cv2.putText(over, f"{key} q={dig.quality[key]:.2f}", (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, (0, 90, 200), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(over, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:  # pragma: no cover
        raise RuntimeError("OpenCV could not encode the PNG")
    atomic_write_bytes(args.out, buf.tobytes())
    print(f"{args.out}: {dig.layout_source} layout, {dig.px_per_mm:.2f} px/mm, mean quality {dig.mean_quality:.2f}; "
          + "; ".join(dig.messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
