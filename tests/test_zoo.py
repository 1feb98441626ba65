"""Tests of ecg_core.ml.zoo: parameter counts, flat graphs, one training step, Grad-CAM, .keras round trip.

Every architecture is built once at a small input (module-scoped fixture) and shared by the tests.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf_keras_vis")

from tf_keras_vis.gradcam import Gradcam  # noqa: E402
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # noqa: E402
from tf_keras_vis.utils.scores import CategoricalScore  # noqa: E402

from ecg_core.ml import zoo  # noqa: E402
from ecg_core.core.errors import ConfigError  # noqa: E402

N_CLASSES = 3
# The first graph-mode train step of a large model spends 15-60 s tracing on CPU; the small models check the
# graph-mode (tf.function) path, the others train one step eagerly (same maths, no tracing).
GRAPH_MODE = {"custom_cnn", "cnn_lstm", "cnn_gru_attention"}
ARCH_NAMES = [spec.name for spec in zoo.list_architectures()]
# small but valid inputs: (h, w, c); the recurrent models get a wide input (time along width), one transfer model
# and one CNN get grayscale to cover the c=1 path
SMALL_INPUT = {
    "custom_cnn": (32, 32, 3),
    "optimized_cnn": (32, 32, 3),
    "shallow_cnn": (32, 32, 1),
    "deep_cnn": (32, 32, 3),
    "cnn_lstm": (32, 64, 3),
    "cnn_gru_attention": (32, 64, 3),
    "residual_attention": (32, 32, 3),
    "mobilenet_v2": (64, 64, 1),
    "efficientnetv2_b0": (64, 64, 3),
    "efficientnetv2_s": (64, 64, 3),
    "resnet50": (64, 64, 3),
    "perlead_cnn": (208, 16, 1),  # the smallest mosaic: 13 panel slots of 16 rows (ecg_core.ml.zoo_perlead)
}


def _images(shape: tuple[int, int, int], n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


@pytest.fixture(scope="module")
def built() -> dict[str, zoo.BuildResult]:
    return {
        name: zoo.build_model(name, input_shape=SMALL_INPUT[name], n_classes=N_CLASSES, seed=1)
        for name in ARCH_NAMES
    }


def test_every_registered_arch_has_a_small_test_input() -> None:
    assert set(SMALL_INPUT) == set(ARCH_NAMES)
    for spec in zoo.list_architectures():
        assert spec.family in zoo.FAMILIES
        assert zoo.get_arch(spec.name) is spec
        assert spec.description and "\n" not in spec.description


def test_custom_cnn_matches_the_seed_parameter_count() -> None:
    res = zoo.build_model("custom_cnn", input_shape=(384, 384, 3), n_classes=4)
    assert res.n_params == 423_748
    assert res.input_shape == (384, 384, 3)
    assert zoo.get_arch("custom_cnn").default_input_size == (384, 384, 3)
    # momentum is not a parameter: every BN uses the requested momentum, the count is unchanged
    res2 = zoo.build_model("custom_cnn", n_classes=4, bn_momentum=0.99)
    assert res2.n_params == 423_748
    assert {bn.momentum for bn in res2.model.layers if isinstance(bn, keras.layers.BatchNormalization)} == {0.99}


def test_optimized_cnn_has_about_5_9m_parameters() -> None:
    res = zoo.build_model("optimized_cnn", n_classes=4)
    assert abs(res.n_params - 5_900_000) / 5_900_000 < 0.05


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_graph_is_flat_and_bn_momentum_is_0_9(built: dict[str, zoo.BuildResult], name: str) -> None:
    res = built[name]
    model = res.model
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "nested sub-model"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert model.output_shape == (None, N_CLASSES)
    assert res.input_shape == SMALL_INPUT[name]
    assert res.n_params == model.count_params() > 0
    assert not res.pretrained_requested and not res.pretrained_loaded
    if zoo.get_arch(name).family != "transfer":  # the Keras applications set their own BN momentum
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                assert layer.momentum == pytest.approx(0.9)


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_trains_one_step_and_gradcam_works(built: dict[str, zoo.BuildResult], name: str) -> None:
    res = built[name]
    model = zoo.compile_model(res.model, lr=1e-3)
    model.run_eagerly = name not in GRAPH_MODE
    x = _images(res.input_shape, 4, seed=2)
    y = keras.utils.to_categorical(np.arange(4) % N_CLASSES, N_CLASSES)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss, _acc = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights, strict=True))

    layer_name = zoo.last_conv_layer_name(model)
    assert layer_name == res.last_conv_layer
    assert len(model.get_layer(layer_name).output.shape) == 4
    gradcam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    # seek_penultimate_conv_layer=False: use exactly the chosen layer (it may be the activation after the conv);
    # activation_modifier=None skips the final ReLU, which can legitimately zero a random model's whole CAM
    cam = gradcam(
        CategoricalScore(0), x[:1], penultimate_layer=layer_name, seek_penultimate_conv_layer=False,
        normalize_cam=False, activation_modifier=None,
    )
    assert cam.shape == (1, *res.input_shape[:2])
    assert np.all(np.isfinite(cam))
    assert float(np.abs(cam).max()) > 0.0


def test_last_conv_layer_names_are_the_canonical_ones(built: dict[str, zoo.BuildResult]) -> None:
    expected = {
        "custom_cnn": "block4_conv",  # Conv2D(relu) -> BN -> pool: the conv with its own ReLU
        "optimized_cnn": "block5b_relu",
        "deep_cnn": "block3b_relu",
        "cnn_lstm": "block3_relu",  # last conv stage before the reshape into a sequence
        "cnn_gru_attention": "block3_relu",
        "residual_attention": "block3_out",
        "mobilenet_v2": "out_relu",
        "efficientnetv2_b0": "top_activation",
        "resnet50": "conv5_block3_out",
        "perlead_cnn": "block3_relu",
    }
    for name, layer in expected.items():
        assert built[name].last_conv_layer == layer


def test_last_conv_layer_name_without_conv_raises() -> None:
    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    with pytest.raises(ConfigError, match="no 2-D convolution"):
        zoo.last_conv_layer_name(model)


@pytest.mark.parametrize(
    "name", ["custom_cnn", "cnn_gru_attention", "cnn_lstm", "residual_attention", "mobilenet_v2", "resnet50"]
)
def test_keras_round_trip_with_safe_mode(built: dict[str, zoo.BuildResult], name: str, tmp_path) -> None:
    model = built[name].model
    x = _images(built[name].input_shape, 2, seed=3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert zoo.last_conv_layer_name(loaded) == built[name].last_conv_layer


def test_pretrained_without_internet_falls_back_or_loads_consistently() -> None:
    res = zoo.build_model("mobilenet_v2", input_shape=(96, 96, 3), n_classes=2, pretrained=True, trainable_top_n=5)
    assert res.pretrained_requested
    if res.pretrained_loaded:  # weights were in ~/.keras/models
        assert "ImageNet weights loaded" in res.message
        assert res.n_trainable_params < res.n_params
        bns = [layer for layer in res.model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert not any(layer.trainable for layer in bns)
    else:
        assert "could not be loaded" in res.message and "random" in res.message
        assert res.n_trainable_params == sum(int(np.prod(w.shape)) for w in res.model.trainable_weights)
    # non-transfer models have no ImageNet weights: a clear message, no failure
    res = zoo.build_model("shallow_cnn", input_shape=(32, 32, 3), n_classes=2, pretrained=True)
    assert not res.pretrained_loaded and "no ImageNet weights" in res.message


def test_cached_imagenet_weights_load_into_the_flat_graph(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The real loading path, offline: a stand-in weight file in a temporary Keras cache.

    Checks that the legacy .h5 loader of the application accepts our weightless prefix layers (gray_to_rgb,
    Rescaling), that the weights land in the right layers, and the freezing rules.
    """
    h5py = pytest.importorskip("h5py")
    legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    keras_config = pytest.importorskip("keras.src.backend.config")
    keras.utils.set_random_seed(11)
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3))
    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5", "w") as f:
        legacy.save_weights_to_hdf5_group(f, reference)
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))  # keras.utils.get_file looks here

    res = zoo.build_model("mobilenet_v2", input_shape=(96, 96, 1), n_classes=2, pretrained=True, trainable_top_n=10)
    assert res.pretrained_loaded and "ImageNet weights loaded" in res.message
    model = res.model
    for name in ("Conv1", "block_8_project", "Conv_1", "Conv_1_bn"):
        for got, want in zip(model.get_layer(name).get_weights(), reference.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)
    assert model.get_layer("gray_to_rgb") is not None  # c=1 replicated to the 3 channels ImageNet weights need
    assert not model.get_layer("Conv1").trainable  # bottom of the base: frozen
    assert model.get_layer("Conv_1").trainable and model.get_layer("block_16_project").trainable  # top 10
    assert not any(layer.trainable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert model.get_layer("predictions").trainable
    assert 0 < res.n_trainable_params < res.n_params / 2


def test_caffe_preprocessing_swaps_channels_and_subtracts_the_mean() -> None:
    res = zoo.build_model("resnet50", input_shape=(32, 32, 3), n_classes=2)
    pre = keras.Model(res.model.input, res.model.get_layer("preprocess_mean").output)
    x = np.zeros((1, 32, 32, 3), np.float32)
    x[..., 0] = 1.0  # pure red in [0, 1]
    out = pre.predict(x, verbose=0)[0, 0, 0]
    np.testing.assert_allclose(out, [0 - 103.939, 0 - 116.779, 255 - 123.68], atol=1e-3)


def test_seed_makes_weights_reproducible() -> None:
    a = zoo.build_model("shallow_cnn", input_shape=(16, 16, 3), n_classes=2, seed=7).model.get_weights()
    b = zoo.build_model("shallow_cnn", input_shape=(16, 16, 3), n_classes=2, seed=7).model.get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "vgg99"}, r"arch must be one of \[.*'custom_cnn'.*received 'vgg99'"),
        ({"input_shape": (32, 32)}, "input_shape must be a tuple"),
        ({"input_shape": (32, 32, 4)}, "channels must be 1"),
        ({"arch": "mobilenet_v2", "input_shape": (16, 16, 3)}, ">= 32 px"),
        ({"n_classes": 1}, "n_classes must be an int >= 2"),
        ({"trainable_top_n": -1}, "trainable_top_n must be an int >= 0"),
        ({"bn_momentum": 1.0}, r"bn_momentum must be a float in \(0, 1\)"),
    ],
)
def test_invalid_build_options_raise_config_error(kwargs: dict, match: str) -> None:
    args = {"arch": "shallow_cnn", "input_shape": (32, 32, 3), "n_classes": 2} | kwargs
    arch = args.pop("arch")
    with pytest.raises(ConfigError, match=match):
        zoo.build_model(arch, **args)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"lr": 0}, "lr must be"), ({"lr": 1e-3, "label_smoothing": 1.0}, "label_smoothing")]
)
def test_invalid_compile_options_raise_config_error(kwargs: dict, match: str) -> None:
    model = zoo.build_model("shallow_cnn", input_shape=(16, 16, 3), n_classes=2).model
    with pytest.raises(ConfigError, match=match):
        zoo.compile_model(model, **kwargs)
