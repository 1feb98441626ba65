"""Preprocess page: pick an image, tune the PreprocessConfig, see every step and the before/after."""

import json

import streamlit as st

from app_ui import auth, common, widgets
from ecg_core.core.errors import EcgCoreError
from ecg_core.imaging.loader import load_image
from ecg_core.imaging.preprocess import CROP_MODES, PreprocessConfig, preprocess

auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("🧪 Preprocess")
st.caption("The same configuration object is stored with every trained model, so inference preprocesses "
           "exactly as training did.")

# The settings live in one place, session state's common.PREPROCESS_KEY (they outlive this page: the Train page can
# use them). Every widget shows that store (its key is set from it before the widget is drawn, so what the sidebar
# shows is what is applied, also after an upload or a visit to another page), and a change updates the store.
# The sidebar is drawn before anything can stop the script, so its widgets never disappear for a run.
WIDGET_FIELDS = {"pre_crop_mode": "crop_mode", "pre_top": "crop_top", "pre_bottom": "crop_bottom",
                 "pre_left": "crop_left", "pre_right": "crop_right", "pre_gray": "grayscale", "pre_clahe": "clahe",
                 "pre_clip": "clahe_clip", "pre_tiles": "clahe_tiles", "pre_median": "median_ksize", "pre_h": "height",
                 "pre_w": "width", "pre_channels": "channels"}
defaults = PreprocessConfig()
settings = common.preprocess_settings_store()


def _changed(key: str) -> None:
    common.preprocess_settings_store()[WIDGET_FIELDS[key]] = st.session_state[key]


def _reset() -> None:
    st.session_state[common.PREPROCESS_KEY] = defaults.to_dict()


for key, name in WIDGET_FIELDS.items():
    st.session_state[key] = settings[name]
kw = {k: {"key": k, "on_change": _changed, "args": (k,)} for k in WIDGET_FIELDS}
with st.sidebar:
    st.subheader("Preprocessing")
    st.selectbox("Crop", CROP_MODES, **kw["pre_crop_mode"],
                 help="relative: fixed fractions; auto: detect the coloured grid (or the pink frame of the grid), "
                      "else the fractions; none: keep everything")
    c1, c2 = st.columns(2)
    c1.slider("top", 0.0, 0.45, step=0.01, **kw["pre_top"])
    c2.slider("bottom", 0.0, 0.45, step=0.01, **kw["pre_bottom"])
    c1.slider("left", 0.0, 0.45, step=0.005, **kw["pre_left"])
    c2.slider("right", 0.0, 0.45, step=0.005, **kw["pre_right"])
    st.checkbox("grayscale", **kw["pre_gray"])
    st.checkbox("CLAHE", **kw["pre_clahe"])
    st.slider("CLAHE clip limit", 0.5, 8.0, step=0.5, disabled=not settings["clahe"], **kw["pre_clip"])
    st.slider("CLAHE tiles", 2, 16, disabled=not settings["clahe"], **kw["pre_tiles"])
    st.select_slider("median filter", [0, 3, 5, 7], **kw["pre_median"])
    st.select_slider("height", [64, 96, 128, 160, 192, 224, 256, 320, 384], **kw["pre_h"])
    st.select_slider("width", [64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512], **kw["pre_w"])
    st.radio("model input", [1, 3], format_func=lambda c: "grayscale (1)" if c == 1 else "RGB (3)",
             horizontal=True, **kw["pre_channels"])
    st.button("Reset to the defaults", on_click=_reset, key="pre_reset",
              disabled=settings == defaults.to_dict())
    st.caption("The Train page can train with these settings (choose them under *Preprocessing* there).")

try:
    cfg = PreprocessConfig.from_dict(settings)
except EcgCoreError as e:
    st.error(f"Invalid settings: {e}")
    st.stop()

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
