"""AppTest for the Learn page: every class (and every subtype / territory) renders a report without an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ecg_core.reports import synth

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "learn.py")


@pytest.fixture(scope="module")
def app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _captions(at: AppTest) -> str:
    return " ".join(str(el.proto) for el in at.get("image"))


@pytest.mark.parametrize("cls", synth.CLASS_KEYS)
def test_every_class_renders(app, cls):
    app.selectbox(key="learn_class").set_value(cls).run()
    assert not app.exception, app.exception
    assert not app.error
    assert app.get("image"), "the report image is shown"
    text = " ".join(m.value for m in app.markdown)
    assert "What a cardiologist looks for" in text
    assert len(app.table) == 2  # layout / territory map + territory legend


@pytest.mark.parametrize("subtype", synth.SUBTYPES["abnormal_heartbeat"])
def test_every_subtype_renders(app, subtype):
    app.selectbox(key="learn_class").set_value("abnormal_heartbeat").run()
    app.selectbox(key="learn_subtype").set_value(subtype).run()
    assert not app.exception, app.exception
    assert synth.SUBTYPE_INFO[subtype][0] in " ".join(m.value for m in app.markdown)


def test_territory_manual_heart_rate_and_options():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="learn_class").set_value("myocardial_infarction").run()
    at.selectbox(key="learn_territory").set_value("lateral").run()
    assert "affected: I, aVL, V5, V6" in _captions(at)
    at.checkbox(key="learn_hr_auto").uncheck().run()
    at.slider(key="learn_hr_myocardial_infarction_None").set_value(95).run()
    assert "HR 9" in _captions(at)
    at.selectbox(key="learn_paper").set_value("black & white").run()
    at.checkbox(key="learn_artifacts").check().run()
    at.checkbox(key="learn_highlight").uncheck().run()
    at.number_input(key="learn_seed").set_value(7).run()
    assert not at.exception, at.exception
