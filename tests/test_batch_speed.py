"""Batch prediction's cache writes: on their own threads (the threads preparing files never wait on fsync), all
finished when ``predict_files`` returns, and a cache that cannot be written never fails a file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import write_image

from ecg_core.core.atomic import FileWriteError

CLASSES = ["a", "b"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ecg_core.imaging.preprocess import PreprocessConfig
    from ecg_core.ml import zoo
    from ecg_core.reports.synth import SynthSpec, make_report

    cfg = PreprocessConfig(height=32, width=48)
    model = zoo.build_model("custom_cnn", input_shape=cfg.input_shape, n_classes=2, seed=0).model
    folder = tmp_path_factory.mktemp("reports")
    files = [write_image(folder / f"r{i}.png", make_report(SynthSpec("normal", seed=i))[0]) for i in range(3)]
    return model, cfg, files


def test_cache_writes_run_on_writer_threads_and_are_done_on_return(tiny, tmp_path, monkeypatch) -> None:
    from ecg_core.imaging.preprocess import PreprocessCache
    from ecg_core.reports import batch
    from ecg_core.reports.ecg_check import CheckCache

    model, cfg, files = tiny
    threads = []
    for cls in (PreprocessCache, CheckCache):
        orig = cls.put

        def spy(self, *a, orig=orig):
            threads.append(threading.current_thread().name)
            return orig(self, *a)

        monkeypatch.setattr(cls, "put", spy)
    df = batch.predict_files(model, cfg, files, class_names=CLASSES, batch_size=2, cache_root=tmp_path / "c")
    assert (df["reason"] == "").all()
    assert len(threads) == 6 and all(t.startswith("predict-cache") for t in threads)
    # every entry is on disk when predict_files returns
    assert len(list((tmp_path / "c" / "preprocess").rglob("*.npy"))) == 3
    assert len(list((tmp_path / "c" / "ecg_check").rglob("*.json"))) == 3


def test_a_cache_that_cannot_be_written_never_fails_a_file(tiny, tmp_path, monkeypatch) -> None:
    from ecg_core.imaging.preprocess import PreprocessCache
    from ecg_core.reports import batch
    from ecg_core.reports.ecg_check import CheckCache

    model, cfg, files = tiny
    plain = batch.predict_files(model, cfg, files, class_names=CLASSES, batch_size=2)

    def full_disk(self, *a):
        raise FileWriteError("no space left on device")

    for cls in (PreprocessCache, CheckCache):
        monkeypatch.setattr(cls, "put", full_disk)
    df = batch.predict_files(model, cfg, files, class_names=CLASSES, batch_size=2, cache_root=tmp_path / "c")
    assert (df["reason"] == "").all() and (df["predicted"] != "").all()
    assert df["predicted"].tolist() == plain["predicted"].tolist()
    assert not list(Path(tmp_path / "c").rglob("*.npy"))


def test_byte_identical_copies_are_prepared_once_and_keep_their_own_rows(tiny, tmp_path, monkeypatch) -> None:
    import shutil

    from ecg_core.reports import batch, ecg_check, pipeline

    model, cfg, files = tiny
    folder = tmp_path / "copies"
    folder.mkdir()
    paths = []
    for i, f in enumerate(files):  # each report twice (a copy under another name), then an unreadable file twice
        paths += [shutil.copy(f, folder / f"r{i}.png"), shutil.copy(f, folder / f"copy of r{i}.png")]
    for name in ("broken.png", "broken copy.png"):
        (folder / name).write_bytes(b"not an image at all")
        paths.append(folder / name)
    checked, decoded = [], []
    orig_check, orig_decode = ecg_check.check_ecg, pipeline.decode_for_model
    monkeypatch.setattr(ecg_check, "check_ecg", lambda rgb, **kw: checked.append(1) or orig_check(rgb, **kw))
    monkeypatch.setattr(pipeline, "decode_for_model",
                        lambda data, name, c: decoded.append(name) or orig_decode(data, name, c))
    df = batch.predict_files(model, cfg, [Path(p) for p in paths], class_names=CLASSES, batch_size=2, root=folder)
    # one check per distinct picture; one decode per distinct content (the broken bytes too)
    assert len(checked) == 3 and len(decoded) == 4
    probs = [f"prob_{c}" for c in CLASSES]
    for i in range(3):
        a, b = df.iloc[2 * i], df.iloc[2 * i + 1]
        assert (a["path"], b["path"]) == (f"r{i}.png", f"copy of r{i}.png")
        assert a["predicted"] == b["predicted"] != "" and list(a[probs]) == list(b[probs])
    # without the memo (the previous behaviour) the same probabilities: a copy's row is what it would have been
    alone = batch.predict_files(model, cfg, [Path(paths[1])], class_names=CLASSES)
    assert list(alone.iloc[0][probs]) == pytest.approx(list(df.iloc[1][probs]), abs=1e-6)
    # the unreadable copy's reason names the copy, not the file that was read first
    r1, r2 = df.iloc[-2]["reason"], df.iloc[-1]["reason"]
    assert r1.startswith(batch.REASON_UNREADABLE) and r2.startswith(batch.REASON_UNREADABLE)
    assert ("broken.png" in r1) != ("broken.png" in r2) and "broken copy.png" in r1 + r2


def test_the_run_memo_keeps_only_the_most_recent_contents() -> None:
    from ecg_core.reports.batch import _RunMemo

    memo = _RunMemo(size=2)
    first, owner = memo.claim("a")
    assert owner and memo.claim("a") == (first, False)
    memo.claim("b")
    memo.claim("c")  # "a" leaves: a later copy of it is prepared again
    assert list(memo.slots) == ["b", "c"] and memo.claim("a")[1]


def test_the_batch_predictor_pads_a_short_batch_and_gives_the_model_s_probabilities(tiny) -> None:
    import numpy as np

    from ecg_core.core.errors import ConfigError
    from ecg_core.ml import zoo
    from ecg_core.reports import batch

    model, cfg, files = tiny
    pred = batch.BatchPredictor(model, None, batch_size=4)
    pred.warm_up()
    x = np.random.default_rng(0).random((3, *cfg.input_shape)).astype(np.float32)
    seen = []
    orig = model.predict_on_batch
    model.predict_on_batch = lambda b: seen.append(b.shape[0]) or orig(b)
    try:
        probs, emb = pred(x)
    finally:
        del model.predict_on_batch
    assert seen == [4] and probs.shape == (3, 2) and emb is None  # padded to the compiled batch, padding dropped
    np.testing.assert_allclose(probs, np.asarray(model(x, training=False)), atol=1e-5)
    with pytest.raises(ConfigError, match="batch_size"):
        batch.BatchPredictor(model, None, batch_size=0)
    other = zoo.build_model("custom_cnn", input_shape=cfg.input_shape, n_classes=2, seed=1).model
    with pytest.raises(ConfigError, match="another model"):
        batch.predict_files(model, cfg, files, class_names=CLASSES, predictor=batch.BatchPredictor(other))
