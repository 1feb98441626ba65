"""Reading speed: digitise + measure one full-resolution report vs today's whole explain pipeline on the same report.

Reading = decode the upload, :func:`ecg_core.reports.reading.digitize.digitize` (deskew, lead boxes, calibration,
12 traces), :func:`~ecg_core.reports.reading.measure.measure` (neurokit2 beats and delineation, per-lead values)
and the criteria. Explain = ``ReportPipeline.analyse`` + ``ecg_core.viz.explain.figures`` with the app's default model, timed as
``bench/explain_latency.py`` does (a fresh pipeline per report: no cache hit). Reports: the full-resolution
Mendeley samples (2213 x 1572). Medians over ``--rounds`` passes, alternating the two so that machine noise hits
both alike. Target: reading / explain <= 3.

    python bench/digitize.py [--images N] [--rounds R] [--run ID]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

from _common import SHARED_DATA, bench_run, cannot_run, emit, finish

BENCH = "digitize"
TARGET = 3.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--run", default=None, help="run id or folder (default: the app's default Keras model: a "
                    "measurement model has no network to explain)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    folder = SHARED_DATA / "mendeley-fullres-samples"
    files = sorted(p for p in folder.rglob("*.jpg"))[: args.images] if folder.is_dir() else []
    if not files:
        return cannot_run(BENCH, f"no full-resolution reports in {folder}")

    from ecg_core.core import paths
    from ecg_core.imaging.loader import load_image
    from ecg_core.ml import registry
    from ecg_core.reports import pipeline
    from ecg_core.reports.reading.criteria import evaluate
    from ecg_core.reports.reading.digitize import digitize
    from ecg_core.reports.reading.measure import measure
    from ecg_core.viz.explain import figures
    from ecg_core.xai.explainer import ExplainerCache

    run = bench_run(args.run, keras=True)
    if run is None:
        return cannot_run(BENCH, f"no usable model in {paths.models_dir()}")
    explainer = ExplainerCache().get(run)
    cfg = registry.preprocess_config_of(run)
    names = explainer.class_names

    def explain_once(data: bytes, name: str) -> None:
        pipe = pipeline.ReportPipeline(explainer, cfg, cache_size=2)
        prepared, ex = pipe.analyse(data, name, method="gradcam")
        figures(prepared, ex, names)

    def read_once(data: bytes) -> tuple:
        dig = digitize(load_image(data).rgb)
        m = measure(dig)
        return dig, m, evaluate(m)

    datas = [(p.read_bytes(), p.name) for p in files]
    explain_once(*datas[0])  # warm-up: tf.function tracing, lazy imports
    read_once(datas[0][0])
    t_explain, t_read, stages = [], [], []
    for data, name in [d for _ in range(args.rounds) for d in datas]:
        t0 = time.perf_counter()
        explain_once(data, name)
        t1 = time.perf_counter()
        rgb = load_image(data).rgb
        t2 = time.perf_counter()
        dig = digitize(rgb)
        t3 = time.perf_counter()
        m = measure(dig)
        evaluate(m)
        t4 = time.perf_counter()
        t_explain.append(t1 - t0)
        t_read.append(t4 - t1)
        stages.append((t2 - t1, t3 - t2, t4 - t3))
    me, mr = statistics.median(t_explain), statistics.median(t_read)
    emit(BENCH, model=run.run_id, reports=len(files), rounds=args.rounds, image_px=f"{rgb.shape[1]}x{rgb.shape[0]}",
         explain_ms=round(1000 * me, 1), read_ms=round(1000 * mr, 1),
         read_stage_ms={"decode": round(1000 * statistics.median(s[0] for s in stages), 1),
                        "digitize": round(1000 * statistics.median(s[1] for s in stages), 1),
                        "measure+criteria": round(1000 * statistics.median(s[2] for s in stages), 1)})
    return finish(BENCH, ratio=mr / me, target=TARGET, higher_is_better=False)


if __name__ == "__main__":
    sys.exit(main())
