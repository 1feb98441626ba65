"""AppTest of the landing page: it says where to start (upload an ECG on the Explain page) with a link to it."""

import ast
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300


def _page_links(at: AppTest) -> list:
    return [el.proto for el in at.get("page_link")]


def test_home_links_to_explain_as_the_place_to_start(tiny_dataset):
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=TIMEOUT)
    at.session_state["app_dataset_root"] = str(tiny_dataset)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "🫀 ECG Insight"  # the landing page is the default page
    text = " ".join(m.value for m in at.markdown)
    assert "Where to start" in text and "upload" in text and "Explain" in text, text[:1000]
    links = _page_links(at)
    assert any(p.page == "explain" and "Upload an ECG" in p.label for p in links), links  # a link to Explain


def test_home_alone_still_says_where_to_start():
    """Run on its own (no navigation) the page cannot link, but still names the Explain page, without an error."""
    at = AppTest.from_file(str(REPO / "pages" / "home.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "Where to start" in text and "Explain" in text


def _home_constants_and_fragment() -> tuple[dict, ast.FunctionDef]:
    """pages/home.py's module-level constants and its warm-up status fragment, read from the source."""
    tree = ast.parse((REPO / "pages" / "home.py").read_text())
    values = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    fragment = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_warmup_status")
    return values, fragment


def test_warmup_status_polls_slowly_enough_not_to_slow_the_warmup():
    """Polling the warm-up twice a second slowed the warm-up it reports on (fragment runs compete with its thread:
    49-197 s instead of 13-17 s in bench/cold_start.py on 2 busy cores); the status line polls every 2 s."""
    values, fragment = _home_constants_and_fragment()
    assert values.get("WARMUP_POLL_S", 0) >= 1.5, values
    assert "WARMUP_POLL_S" in ast.unparse(fragment.decorator_list[0])


def test_warmup_poll_waits_on_the_done_event_only_in_fragment_runs():
    """Each poll waits on the warm-up's done event (so "ready" shows at once, not at the next poll: bench/cold_start.py
    median 9.3 -> 7.6-7.9 s on this 2-core machine), shorter than the poll period, and only in fragment-only runs:
    the page's own first run never waits."""
    values, fragment = _home_constants_and_fragment()
    assert 0 < values["WARMUP_WAIT_S"] < values["WARMUP_POLL_S"], values
    waits = [n for n in ast.walk(fragment) if isinstance(n, ast.If) and "wait(" in ast.unparse(n.body[0])]
    assert waits and "_fragment_only_run()" in ast.unparse(waits[0].test), ast.unparse(fragment)[:400]
