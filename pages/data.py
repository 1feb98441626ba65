"""Data page: counts per class, distinct images vs copies, duplicate groups, leak-free split (with a warning for
classes with few images in a split) and leakage check."""

import streamlit as st

from app_ui import auth, cache, common
from ecg_core.ml import dataset, splits
from ecg_core.viz import common as viz

auth.page_guard()  # sharing mode: nothing without a login (app_ui/auth.py)
st.title("🗂️ Data")
index = common.require_dataset()
report = dataset.audit(index)

st.caption(f"Dataset `{index.attrs.get('root', '')}` · label preset `{index.attrs.get('preset', '')}`")
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("files", report.n_files)
c2.metric("readable", report.n_readable)
c3.metric("distinct images", report.n_distinct)
c4.metric("image groups", report.n_groups,
          help="One group per distinct image with its exact and near copies; an image without copies is a group "
               "of one. Splits and training count groups.")
c5.metric("duplicate groups (with copies)", report.n_groups_with_copies,
          help="Groups of two or more files (exact or near copies of one image)")

if report.n_files and report.n_distinct < report.n_readable:
    st.warning(
        f"Only {report.n_distinct} of {report.n_readable} readable files are distinct images "
        f"({report.n_readable - report.n_distinct} copies). A random file-level split would put copies of one "
        "report on both sides; this app always splits by duplicate group."
    )
if len(report.cross_class_groups):
    st.error(
        f"{report.cross_class_groups['group'].nunique()} duplicate groups have copies in more than one class "
        "folder: the same image carries two labels."
    )
    st.dataframe(report.cross_class_groups, hide_index=True)
if report.n_unreadable:
    with st.expander(f"⚠️ {report.n_unreadable} files could not be read", expanded=report.n_readable == 0):
        st.dataframe(report.unreadable, hide_index=True, width="stretch")
if report.skipped:
    with st.expander(f"{len(report.skipped)} non-image files ignored"):
        st.dataframe({"file": [s[0] for s in report.skipped], "reason": [s[1] for s in report.skipped]},
                     hide_index=True)
if report.unknown_folders:
    st.warning(f"Folders that match no class of the preset (ignored for training): {', '.join(report.unknown_folders)}")
if report.empty_class_folders:
    st.warning(f"Class folders without any image: {', '.join(report.empty_class_folders)}")
if report.n_readable == 0:
    st.stop()

left, right = st.columns([3, 2])
left.plotly_chart(viz.class_counts_bar(report.per_class), width="stretch")
right.dataframe(report.per_class.drop(columns=["class_id"]), hide_index=True, width="stretch")

st.subheader("Duplicate groups")
groups = dataset.duplicate_groups(index)
if not groups:
    st.success("No exact or near copies found: every image is distinct.")
else:
    labels = [f"group {int(g['group'].iloc[0])} · {len(g)} files · {', '.join(sorted(set(g['class_name'])))}"
              for g in groups]
    pick = st.selectbox("Group (largest first)", range(len(groups)), format_func=lambda i: labels[i],
                        key="data_group")
    members = groups[pick]
    n_exact = members["sha256"].nunique()
    st.caption(f"{len(members)} files, {n_exact} distinct file contents"
               + (" (near copies: resized or re-encoded)" if n_exact > 1 else " (byte-identical copies)"))
    cols = st.columns(min(4, len(members)))
    for i, (_, m) in enumerate(members.head(8).iterrows()):
        thumb = cache.thumbnail(m["path"])
        with cols[i % len(cols)]:
            if thumb is not None:
                st.image(thumb, caption=m["rel_path"], width="stretch")
            else:
                st.caption(f"{m['rel_path']} (cannot be shown)")

st.subheader("Leak-free split")
s1, s2, s3 = st.columns(3)
seed = s1.number_input("seed", 0, 10_000, 0, key="data_seed")
val = s2.slider("validation share", 0.0, 0.4, 0.15, 0.05, key="data_val")
test = s3.slider("test share", 0.05, 0.4, 0.15, 0.05, key="data_test")
with common.guard("Splitting"):
    split = splits.split_by_group(index, val_frac=val, test_frac=test, seed=int(seed))
    table = splits.split_table(split)
leaks = splits.leakage(split)
if leaks.empty:
    st.success("Leakage check passed: every duplicate group sits in exactly one split.")
else:  # cannot happen with split_by_group, but the check is real
    st.error(f"{len(leaks)} duplicate groups straddle splits.")
    st.dataframe(leaks, hide_index=True)
thin = splits.few_images(table)
thin = thin[thin["split"].isin(["val", "test"])]  # the splits the metrics come from
if not thin.empty:
    cells = "; ".join(f"**{c}**: " + ", ".join(f"{r.images} in {r.split}" for r in rows.itertuples())
                      for c, rows in thin.groupby("class_name", sort=False))
    fewest = int(thin["images"].min())
    st.warning(
        f"Few distinct images (under {splits.MIN_IMAGES_PER_SPLIT}) to evaluate on: {cells}. "
        + (f"With {fewest} image{'s' if fewest != 1 else ''}, one misclassification moves that class's recall by "
           f"{100 / fewest:.0f} percentage points, so its per-class validation/test numbers are rough (read their "
           "confidence intervals). " if fewest else "A class with no image in a split cannot be evaluated there. ")
        + "Raise the validation/test share or add images of these classes.")
st.plotly_chart(viz.split_bar(table), width="stretch")
st.dataframe(table, width="stretch")
naive = splits.leakage(splits.random_file_split(index, val_frac=val, test_frac=test, seed=int(seed)))
if not naive.empty:
    st.info(f"For comparison: a random file-level split with the same seed would leak {len(naive)} duplicate "
            f"groups ({int(naive['n_files'].sum())} files) across train/val/test.")
st.download_button("Download index with split (CSV)", split.to_csv(index=False).encode(), "dataset_index.csv",
                   "text/csv", key="data_download")
