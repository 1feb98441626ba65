"""The zoomable view of a heatmap overlay (ecg_core.viz.explain.zoomable_image_figure), shown on phones by the
Explain page (issue 19, item 10): the picture itself, aspect kept, zoom by box drag."""

import base64

import cv2
import numpy as np
import pytest

from ecg_core.viz.explain import image_data_uri, zoomable_image_figure


def _image(h: int = 120, w: int = 200) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (255, 0, 0)
    rgb[:, w // 2:] = (0, 0, 255)
    return rgb


def test_figure_holds_the_picture_with_its_aspect():
    rgb = _image()
    fig = zoomable_image_figure(rgb)
    (trace,) = fig.data
    assert trace.type == "image" and trace.source.startswith("data:image/jpeg;base64,")
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(trace.source.split(",", 1)[1]), np.uint8),
                                        cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert decoded.shape == rgb.shape
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 8  # the same picture (JPEG)
    layout = fig.layout
    assert layout.yaxis.scaleanchor == "x"  # square pixels: zooming never stretches the leads
    assert tuple(layout.xaxis.range) == (-0.5, 199.5) and tuple(layout.yaxis.range) == (119.5, -0.5)  # top row up
    assert layout.dragmode == "zoom" and not layout.xaxis.visible


def test_height_follows_the_aspect():
    assert zoomable_image_figure(_image(100, 200), nominal_width=400).layout.height == 200 + 30
    assert zoomable_image_figure(_image(100, 200), height=300).layout.height == 330
    assert zoomable_image_figure(_image(2000, 200)).layout.height == 900 + 30  # capped


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((0, 10, 3), np.uint8)])
def test_rejects_what_is_not_an_rgb_picture(bad):
    with pytest.raises(ValueError):
        image_data_uri(bad)
