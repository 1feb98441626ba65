"""The spectral-image beat CNN with the RR context as a second input (issue 17, item 4a): a tiny toy shape, no data
folder needed."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def toy() -> tuple[object, dict[str, np.ndarray]]:
    from ecg_core.signals.beat_cnn import build_spectral_rr_cnn

    model = build_spectral_rr_cnn(5, image_shape=(16, 16, 1), n_rr=9, seed=0)
    rng = np.random.default_rng(0)
    x = {"spectral": rng.uniform(0.0, 1.0, size=(4, 16, 16, 1)).astype("float32"),
         "rr": rng.normal(size=(4, 9)).astype("float32")}
    return model, x


def test_two_named_inputs_and_a_softmax_over_the_classes(toy) -> None:
    import keras

    model, x = toy
    assert [i.name for i in model.inputs] == ["spectral", "rr"]
    assert model.output_shape == (None, 5)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # flat graph
    assert all(layer.momentum == 0.9 for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    p = model.predict(x, verbose=0)
    assert p.shape == (4, 5) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_the_rr_input_reaches_the_output(toy) -> None:
    model, x = toy
    p = model.predict(x, verbose=0)
    q = model.predict({"spectral": x["spectral"], "rr": x["rr"] + 3.0}, verbose=0)
    assert np.abs(p - q).max() > 1e-4


def test_seed_size_stays_small() -> None:
    from ecg_core.signals.beat_cnn import build_spectral_rr_cnn

    m = build_spectral_rr_cnn(5, image_shape=(64, 64, 1), n_rr=9, seed=0)
    assert 10_000 < m.count_params() < 100_000  # tens of thousands: a fold trains in minutes on one core


def test_round_trips_as_keras_in_safe_mode(toy, tmp_path) -> None:
    import keras

    model, x = toy
    p = model.predict(x, verbose=0)
    model.save(tmp_path / "spectral_rr.keras")
    back = keras.models.load_model(tmp_path / "spectral_rr.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(back.predict(x, verbose=0), p, atol=1e-6)
