"""Preprocess page: pick an image, tune the PreprocessConfig, see every step and the before/after."""

import json

import streamlit as st

from app_ui import common, widgets
from ecg_core.core.errors import EcgCoreError
from ecg_core.imaging.loader import load_image
from ecg_core.imaging.preprocess import CROP_MODES, PreprocessConfig, preprocess

st.title("🧪 Preprocess")
st.caption("The same configuration object is stored with every trained model, so inference preprocesses "
           "exactly as training did.")

source = st.radio("Image", ["From the dataset", "Upload"], horizontal=True, key="pre_source")
data, name = None, None
if source == "Upload":
    up = st.file_uploader("ECG report image", type=["jpg", "jpeg", "png", "bmp", "tif", "tiff"], key="pre_upload")
    if up is None:
        st.info("Upload a photo or scan of a 12-lead ECG report.")
        st.stop()
    data, name = up.getvalue(), up.name
else:
    index = common.require_dataset()
    ok = index[index["error"] == ""]
    if ok.empty:
        st.warning("The dataset has no readable image.")
        st.stop()
    rel = st.selectbox("Image", ok["rel_path"].tolist(), key="pre_image")
    path = ok.loc[ok["rel_path"] == rel, "path"].iloc[0]
    name = rel

defaults = PreprocessConfig()
with st.sidebar:
    st.subheader("Preprocessing")
    crop_mode = st.selectbox("Crop", CROP_MODES, index=CROP_MODES.index(defaults.crop_mode), key="pre_crop_mode",
                             help="relative: fixed fractions; auto: detect the coloured grid; none: keep everything")
    c1, c2 = st.columns(2)
    top = c1.slider("top", 0.0, 0.45, defaults.crop_top, 0.01, key="pre_top")
    bottom = c2.slider("bottom", 0.0, 0.45, defaults.crop_bottom, 0.01, key="pre_bottom")
    left = c1.slider("left", 0.0, 0.45, defaults.crop_left, 0.005, key="pre_left")
    right = c2.slider("right", 0.0, 0.45, defaults.crop_right, 0.005, key="pre_right")
    gray = st.checkbox("grayscale", defaults.grayscale, key="pre_gray")
    clahe = st.checkbox("CLAHE", defaults.clahe, key="pre_clahe")
    clip = st.slider("CLAHE clip limit", 0.5, 8.0, defaults.clahe_clip, 0.5, key="pre_clip", disabled=not clahe)
    tiles = st.slider("CLAHE tiles", 2, 16, defaults.clahe_tiles, key="pre_tiles", disabled=not clahe)
    median = st.select_slider("median filter", [0, 3, 5, 7], defaults.median_ksize, key="pre_median")
    h = st.select_slider("height", [64, 96, 128, 160, 192, 224, 256, 320, 384], defaults.height, key="pre_h")
    w = st.select_slider("width", [64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512], defaults.width,
                         key="pre_w")
    channels = st.radio("model input", [1, 3], format_func=lambda c: "grayscale (1)" if c == 1 else "RGB (3)",
                        horizontal=True, key="pre_channels")

try:
    cfg = PreprocessConfig(crop_mode=crop_mode, crop_top=top, crop_bottom=bottom, crop_left=left, crop_right=right,
                           grayscale=gray, clahe=clahe, clahe_clip=clip, clahe_tiles=tiles, median_ksize=median,
                           height=h, width=w, channels=channels)
except EcgCoreError as e:
    st.error(f"Invalid settings: {e}")
    st.stop()

with common.guard("Loading the image"):
    img = load_image(data, name=name) if data is not None else load_image(path)
res = preprocess(img.rgb, cfg)
for note in res.notes:
    st.info(note)
if img.exif_rotated:
    st.caption("The photo was rotated according to its EXIF orientation.")

b, a = st.columns(2)
b.image(img.rgb, caption=f"before: {img.width}x{img.height} ({img.source_format}, {img.source_mode})",
        width="stretch")
a.image(res.final if res.final.shape[2] == 3 else res.final[:, :, 0], clamp=True,
        caption=f"after: model input {cfg.width}x{cfg.height}x{cfg.channels}", width="stretch")

st.subheader("Every step")
widgets.step_grid(res.steps[1:])
st.caption(f"crop box (x0, y0, x1, y1) in original pixels: {res.crop_box}")
with st.expander("Configuration (stored with trained models)"):
    st.code(json.dumps(cfg.to_dict(), indent=1), language="json")
    st.caption(f"config hash (cache key): `{cfg.config_hash()}`")
