"""Digitise every distinct report of a dataset once and write its measurement features (a cache for measure_cv.py).

    nice -n 10 .venv/bin/python scripts/measure_features.py ../shared/data/mendeley-dev --cache /work/cache/measure

Writes CACHE/index.csv (ecg_core.ml.dataset.scan: groups of copies), CACHE/sig/<sha256>.npz (digitised signals,
no pickle) and CACHE/features.csv (one row per distinct file: sha256, group, label, class_name, the features of
ecg_core.reports.reading.features). ``--part k --parts n`` splits the digitising over n processes; a rerun reuses
what is cached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecg_core.ml.dataset import scan
from ecg_core.reports.reading.digitize import digitize_file
from ecg_core.reports.reading.features import FEATURES_VERSION, CachedSignals, report_features


def digitise_all(idx: pd.DataFrame, out: Path, part: int, parts: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = idx[idx.sha256.notna() & (idx.error.fillna("") == "")].drop_duplicates("sha256")
    t0, n = time.time(), 0
    for k, r in enumerate(rows.itertuples(index=False)):
        f = out / f"{r.sha256}.npz"
        if k % parts != part or f.exists():
            continue
        try:
            d = digitize_file(r.path)
            meta = dict(fs=d.fs, quality=d.quality, windows=d.windows, px_per_mm=d.px_per_mm, layout=d.layout_source,
                        messages=list(d.messages), strips=list(d.strips))
            np.savez_compressed(f, signals=d.signals.astype(np.float32), rhythm=d.rhythm.astype(np.float32),
                                meta=np.array(json.dumps(meta)),
                                **{f"strip_{i}": v for i, v in enumerate(d.strips.values())})
        except Exception as e:  # a report that cannot be read is recorded, never stops the batch
            np.savez_compressed(f, error=np.array(repr(e)))
        n += 1
    print(f"digitised {n} files in {time.time() - t0:.1f} s (part {part}/{parts})", flush=True)


def load_cached(f: Path) -> CachedSignals | None:
    z = np.load(f, allow_pickle=False)
    if "error" in z.files:
        return None
    meta = json.loads(str(z["meta"]))
    strips = {name: z[f"strip_{i}"].astype(np.float64) for i, name in enumerate(meta.get("strips", []))}
    return CachedSignals(z["signals"].astype(np.float64), z["rhythm"].astype(np.float64), float(meta["fs"]),
                         meta["quality"], strips)


def features_all(idx: pd.DataFrame, sig: Path) -> pd.DataFrame:
    rows = []
    t0 = time.time()
    for r in idx[idx.sha256.notna()].drop_duplicates("sha256").itertuples(index=False):
        f = sig / f"{r.sha256}.npz"
        d = load_cached(f) if f.exists() else None
        feats = report_features(d) if d is not None else {}
        rows.append({"sha256": r.sha256, "path": r.path, "group": r.group, "label": r.label,
                     "class_name": r.class_name, "read_ok": int(d is not None), **feats})
    print(f"features of {len(rows)} files in {time.time() - t0:.1f} s", flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--cache", default="/work/cache/measure")
    ap.add_argument("--part", type=int, default=0)
    ap.add_argument("--parts", type=int, default=1)
    ap.add_argument("--skip-digitise", action="store_true")
    a = ap.parse_args(argv)
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    idx_path = cache / "index.csv"
    if not idx_path.exists():
        scan(a.data).to_csv(idx_path, index=False)
    idx = pd.read_csv(idx_path)
    if not a.skip_digitise:
        digitise_all(idx, cache / "sig", a.part, a.parts)
    if a.part == 0:
        df = features_all(idx, cache / "sig")
        df.attrs["version"] = FEATURES_VERSION
        df.to_csv(cache / "features.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
