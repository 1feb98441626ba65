"""AppTest of the Explain page's Reading view (issue 14): a synthetic report opened by path -> the traces drawn over
it, the measurement tables, the criteria and the three downloads; a non-standard image shows messages, never a
traceback. The tiny model and the dataset come from the Explain page's fixtures."""

from __future__ import annotations

from pathlib import Path

from test_page_explain import page, trained  # noqa: F401  (pytest fixtures)


def _reading(at):
    at.toggle(key="explain_reading").set_value(True)
    return at.run()


def test_reading_view_on_a_synthetic_report(page, trained) -> None:  # noqa: F811
    _, data = trained
    image = sorted(Path(data, "myocardial_infarction").glob("*.png"))[0]
    at = page(explain_path=str(image)).run()
    assert not at.exception, at.exception
    at = _reading(at)
    assert not at.exception, at.exception
    captions = " ".join(str(el.proto) for el in at.get("imgs")) + " ".join(str(el.proto) for el in at.get("image"))
    assert "traces read off the report" in captions
    assert len(at.dataframe) >= 2
    assert any("traces pass the quality check" in c.value for c in at.caption)
    assert any("Criteria that fire" in md.value for md in at.markdown)
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Signals (WFDB zip)", "Signals (CSV)", "Measurements (CSV)"} <= set(labels)
    at.toggle(key="reading_show").set_value(False).run()  # the plain report
    assert not at.exception, at.exception


def test_pdf_gains_the_measurement_table(page, trained, monkeypatch) -> None:  # noqa: F811
    import ecg_core.reports.pdf as report

    contents, pdfs = [], []
    real_build = report.build_report

    def recording(content):
        contents.append(content)
        pdfs.append(real_build(content))
        return pdfs[-1]

    monkeypatch.setattr(report, "build_report", recording)
    _, data = trained
    image = sorted(Path(data, "history_of_mi").glob("*.png"))[0]
    at = _reading(page(explain_path=str(image)).run())
    at.toggle(key="explain_pdf_on").set_value(True).run()
    assert not at.exception, at.exception
    assert pdfs and pdfs[-1].startswith(b"%PDF")
    g, lt = contents[-1].measurement_tables
    assert list(g["measurement"])[0] == "Heart rate" and len(lt) == 12


def test_learn_page_prints_a_real_record() -> None:
    import pytest
    from streamlit.testing.v1 import AppTest

    from conftest import SHARED_DATA

    if not (SHARED_DATA / "signals" / "12lead").is_dir():
        pytest.skip("../shared/data/signals/12lead is absent")
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "learn.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    captions = " ".join(str(el.proto) for el in at.get("imgs")) + " ".join(str(el.proto) for el in at.get("image"))
    assert "printed at 25 mm/s" in captions


def test_arrhythmia_page_takes_the_rhythm_strip_of_a_report(tmp_path, monkeypatch) -> None:
    import numpy as np
    from streamlit.testing.v1 import AppTest

    from ecg_core.reports.synth import RenderOptions, random_spec, render_report, synth_signals
    from ecg_core.reports.synth_render import encode_image

    monkeypatch.setenv("ECG_INSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ECG_INSIGHT_MODELS", str(tmp_path / "empty-models"))
    monkeypatch.setenv("ECG_INSIGHT_SHARED_DATA", str(tmp_path / "no-shared-data"))
    image, _ = render_report(synth_signals(random_spec("normal", np.random.default_rng(4))),
                             RenderOptions(px_per_mm=4.0), seed=4)
    script = str(Path(__file__).resolve().parents[1] / "pages" / "arrhythmia.py")
    at = AppTest.from_file(script, default_timeout=180).run()
    at.radio(key="arr_source").set_value("Rhythm strip of a report image").run()
    assert not at.exception and any("rhythm strip at the bottom" in i.value for i in at.info)
    at.file_uploader(key="reading_strip_upload").set_value([("my report (1).png", encode_image(image, "png"),
                                                             "image/png")]).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert any("Rhythm strip read off" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 1  # the strip is shown and cut into beats
