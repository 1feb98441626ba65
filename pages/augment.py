"""Augment page: a grid of augmented variants of one image beside the original, and the class-balancing plan
computed from the training split (the same plan and pipeline the training job uses)."""

import warnings
from dataclasses import fields, replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_ui import auth, cache, common
from ecg_core.imaging import augment
from ecg_core.ml import train_data
from ecg_core.ml.train_config import TrainConfig
from ecg_core.core.errors import EcgCoreError

auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("🎛️ Augment")
st.caption("Augmentation runs online, on the training split only; validation and test images are never "
           "augmented or copied. The sliders below preview a preset: a training job uses the named preset chosen "
           "on the Train page (default \"light\") with its stored values, not these sliders. The balancing plan "
           "below is the one the job computes.")

index = common.require_dataset()
ok = index[index["error"] == ""]
if ok.empty:
    st.warning("The dataset has no readable image.")
    st.stop()

SLIDERS = {  # field -> (label, min, max, step)
    "rotate_deg": ("rotation (degrees)", 0.0, 15.0, 0.5),
    "shift_frac": ("shift (fraction)", 0.0, 0.15, 0.01),
    "scale_frac": ("scale change", 0.0, 0.3, 0.01),
    "perspective": ("perspective", 0.0, 0.15, 0.01),
    "crop_pad_frac": ("crop / pad", 0.0, 0.15, 0.01),
    "brightness": ("brightness", 0.0, 0.6, 0.05),
    "contrast": ("contrast", 0.0, 0.6, 0.05),
    "gamma": ("gamma", 0.0, 0.6, 0.05),
    "clahe_clip": ("CLAHE clip (0 = off)", 0.0, 6.0, 1.0),
    "noise_std": ("Gaussian noise", 0.0, 0.15, 0.01),
    "blur_kernel": ("blur kernel (0 = off)", 0, 9, 2),
    "jpeg_quality_min": ("lowest JPEG quality (100 = off)", 10, 100, 5),
    "shadow": ("shadow", 0.0, 1.0, 0.1),
    "p": ("probability per transform", 0.0, 1.0, 0.05),
}

with st.sidebar:
    st.subheader("Augmentation")
    preset_name = st.selectbox("preset", list(augment.PRESETS), index=list(augment.PRESETS).index("moderate"),
                               key="aug_preset")
    base = augment.PRESETS[preset_name]
    values = {}
    for name, (label, lo, hi, step) in SLIDERS.items():
        default = getattr(base, name)
        default = min(max(default, lo), hi)
        values[name] = st.slider(label, lo, hi, default, step, key=f"aug_{preset_name}_{name}")
    if values["blur_kernel"] == 1:
        values["blur_kernel"] = 3
    if 0 < values["clahe_clip"] < 1:
        values["clahe_clip"] = 1.0
    values["to_gray"] = st.checkbox("black-and-white copy", base.to_gray, key=f"aug_{preset_name}_to_gray")
    st.markdown("**Off by default — they break ECG semantics:**")
    values["hflip"] = st.checkbox("horizontal flip", False, key="aug_hflip",
                                  help=augment.SEMANTIC_RISKS["hflip"][1])
    values["vflip"] = st.checkbox("vertical flip", False, key="aug_vflip", help=augment.SEMANTIC_RISKS["vflip"][1])

try:
    cfg = replace(base, **{k: (int(v) if isinstance(getattr(base, k), int) and not isinstance(v, bool) else v)
                           for k, v in values.items()})
except EcgCoreError as e:
    st.error(f"Invalid augmentation settings: {e}")
    st.stop()
for name, reason in augment.semantic_risks(cfg).items():
    st.warning(f"**{name}** is enabled: {reason}")

c1, c2, c3 = st.columns([3, 1, 1])
rel = c1.selectbox("Image", ok["rel_path"].tolist(), key="aug_image")
seed = c2.number_input("seed", 0, 100_000, 0, key="aug_seed")
n = c3.select_slider("variants", [4, 6, 8, 12], 8, key="aug_n")
on_model_input = st.toggle("show on the preprocessed model input (what training sees)", True, key="aug_model_input")


path = ok.loc[ok["rel_path"] == rel, "path"].iloc[0]
with common.guard("Loading the image"):
    src = cache.augment_source(path, on_model_input)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # risks are shown above as page warnings
    variants = augment.preview_grid(src, cfg, n=int(n), seed=int(seed))

left, right = st.columns([1, 3])
left.image(src, caption="original (untouched)", width="stretch")
with right:
    for row in range(0, len(variants), 3):
        cols = st.columns(3)
        for i, (col, v) in enumerate(zip(cols, variants[row: row + 3])):
            col.image(v, caption=f"variant {row + i + 1}", width="stretch")
with st.expander("Augmentation config of this preview (a run stores the config of its Train-page preset)"):
    st.json({f.name: getattr(cfg, f.name) for f in fields(cfg)})

st.subheader("Class-balancing plan (training split only)")
job = TrainConfig(data_dir=str(index.attrs.get("root") or "."))  # the options the Train page starts a job with
b1, b2 = st.columns([1, 3])
split_seed = b1.number_input("split seed (the Train page's seed)", 0, 10_000, 0, key="aug_split_seed")
job = replace(job, seed=int(split_seed))
b2.caption(f"The training job's own plan, computed by the same code: split by duplicate group (validation "
           f"{job.val_frac:.0%}, test {job.test_frac:.0%}), **one file per duplicate group** (copies do not weigh "
           f"more), then every class oversampled up to the largest, at most x{job.max_multiplier} (class balance "
           "'oversample', the Train page's default; with 'class_weights' or 'none' nothing is copied).")
with common.guard("Computing the training split"):
    grouped = train_data.apply_record_groups(index)
    split = train_data.job_split(grouped, job)
train = split[split["split"] == "train"]
if train.empty:
    st.info("No training images in this dataset (no class folder matched the label preset).")
    st.stop()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    _, plan = train_data.training_rows(train, job)
for w in caught:
    st.warning(str(w.message))
all_files = train_data.job_split(grouped, replace(job, dedupe=False))  # the same split, copies kept
files_per_class = all_files[all_files["split"] == "train"].groupby("class_name").size()
table = pd.DataFrame({
    "training files (copies included)": files_per_class,
    "training images": pd.Series(plan["before"]),  # distinct: one file per duplicate group, what the job sees
    "multiplier": pd.Series(plan.get("multipliers", {})).reindex(list(plan["before"])).fillna(1).astype(int).map(
        lambda m: f"x{m}"),
    "after balancing": pd.Series(plan["after"]),
}).fillna(0).astype({"training files (copies included)": int})
val_test = split[split["split"].isin(["val", "test"])].groupby(["class_name", "split"]).size().unstack(fill_value=0)
val_test = val_test[[c for c in ("val", "test") if c in val_test.columns]]
table = table.join(val_test.rename(columns=lambda c: f"{c} (distinct, never augmented)"), how="left").fillna(0)
st.dataframe(table, width="stretch")
copies = {c: (int(files_per_class.get(c, 0)), int(n)) for c, n in plan["before"].items()
          if files_per_class.get(c, 0) > n}
if copies:
    st.caption("Copies in the training split: " + "; ".join(f"{c}: {f} files are {n} distinct images"
                                                              for c, (f, n) in copies.items()) + ".")
before, after = plan["before"], plan["after"]
imbalance_before = max(before.values()) / min(before.values())
imbalance_after = max(after.values()) / min(after.values())
fig = go.Figure([
    go.Bar(name="distinct images", x=list(before), y=list(before.values())),
    go.Bar(name="after balancing", x=list(after), y=list(after.values())),
])
fig.update_layout(barmode="group", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                  title=f"imbalance {imbalance_before:.1f}:1 → {imbalance_after:.1f}:1")
st.plotly_chart(fig, width="stretch")
st.caption(f"{sum(after.values())} training samples per epoch; copies beyond the first are augmented online with "
           "a seed derived from (image, copy, epoch).")
