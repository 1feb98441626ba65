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
