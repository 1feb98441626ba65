"""Per-beat features that transfer across patients: RR context and morphology normalised per record.

Every record is brought to one sampling rate (:data:`FEATURE_FS`, ``scipy.signal.resample_poly``) and band-passed
(0.5-40 Hz); the leads are picked **by name**: the limb lead ``MLII`` (else ``II``, else channel 0) and ``V1`` only
when a channel is named ``V1`` (MIT-BIH records 114 and 124 carry V5 / V4 instead: their V1 features are NaN, which
the gradient-boosting model treats as missing).

Features of beat ``i`` (R peak ``r_i``), all pure functions of the record (no label is used):

* RR context: ``pre_rr``, ``post_rr`` (s), ``local_rr`` (mean of the 10 RR intervals around the beat), ``rec_rr``
  (record median RR) and the ratios ``pre_rr_rec``, ``post_rr_rec``, ``local_rr_rec``, ``pre_local``,
  ``post_pre``, ``pre_local_med`` (pre-RR / median of the 11 pre-RRs around the beat) and ``local_cv`` (their
  coefficient of variation: an irregular rhythm such as atrial fibrillation makes a short RR less telling) — the
  ratios are invariant to a record-wide rate change.
* QRS width (ms) from the slope envelope on the filtered signal (onset / offset where the 12 ms-smoothed absolute
  slope falls below 7 % of its QRS maximum, gaps < 30 ms bridged): ``qrs_ms`` (MLII), ``qrs_core_ms`` (MLII at
  15 %), ``qrs_v1_ms`` (V1 at 10 %),
  ``qrs_max_ms``, ``qrs_rec`` (width / record median width).
* Template correlation against the record's median beat (``corr_tpl``, ``corr_tpl_qrs``, ``corr_tpl_v1``), the
  QRS peak-to-peak amplitude divided by the record median (``amp_rec``), shape ratios of MLII (``ml_pos_frac``,
  ``ml_term``, ``ml_npk``).
* V1 morphology inside the QRS: positive-area fraction ``v1_pos_frac``, initial / terminal mean deflection
  ``v1_init`` / ``v1_term`` (fraction of the QRS peak-to-peak), number of positive peaks ``v1_npk``, a terminal R'
  after the deepest point ``v1_rprime``, S width ``v1_s_ms``.
* ``w00``..``w14``: the beat window -0.2..+0.4 s divided by the record's median QRS amplitude, averaged over 40 ms
  bins.
* SVEB (:data:`P_FEATURES`, :func:`p_wave_features`): the 200 ms before the QRS onset against the record's median
  of that window (``p_corr``, ``p_corr_v1``), its amplitude per record / per beat / of the template (``p_amp_rec``,
  ``p_qrs_amp``, ``tpl_p_amp``), the pause after the beat (``post_local``) and prematurity x QRS-template
  correlation (``prem_normal``).
* Local rhythm (:data:`LOCAL_FEATURES`, :func:`local_rhythm_features`): pre- / post-RR against the mean of the 10
  RRs *before* the beat, the compensatory pause, pre-RR over the previous pre-RR, and the P window against the
  previous 10 beats' P windows; :data:`AF_CONTEXT_FEATURES` (:func:`rhythm_context`): RR irregularity and P-wave
  consistency over the 21 beats around the beat (the atrial-fibrillation gate of ``arrhythmia_gbm``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecg_core.signals.filters import clean, detect_rpeaks, resample, resample_index
from ecg_core.signals.records import WFDB_BEAT_SYMBOLS, Record

#: The one sampling rate of every feature (Hz): mitdb (360 Hz) and vfdb (250 Hz) records are resampled to it.
FEATURE_FS = 250.0
LIMB_LEADS: tuple[str, ...] = ("MLII", "II")
_N_WIN = 15

RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "rec_rr", "pre_rr_rec", "post_rr_rec", "local_rr_rec", "pre_local",
               "post_pre", "pre_local_med", "local_cv")
MORPH_FEATURES = ("qrs_ms", "qrs_core_ms", "qrs_v1_ms", "qrs_max_ms", "qrs_rec", "corr_tpl", "corr_tpl_qrs", "corr_tpl_v1",
                  "amp_rec", "ml_pos_frac", "ml_term", "ml_npk", "v1_pos_frac", "v1_init", "v1_term", "v1_npk",
                  "v1_rprime", "v1_s_ms")
WINDOW_FEATURES = tuple(f"w{i:02d}" for i in range(_N_WIN))
#: SVEB features (issue 17): the atrial activity before the QRS against the record's template, prematurity of a
#: normal-looking QRS, the pause after the beat (see :func:`p_wave_features`)
P_FEATURES = ("p_corr", "p_corr_v1", "p_amp_rec", "p_qrs_amp", "tpl_p_amp", "post_local", "prem_normal")
#: local-rhythm SVEB features (issue 17, wave 5; :func:`local_rhythm_features`): prematurity against the rhythm
#: *before* the beat, the compensatory pause, the P wave against the previous beats' P waves
LOCAL_FEATURES = ("pre_prev10", "post_prev10", "comp_pause", "pre_prev1", "p_corr_local", "p_amp_local")
#: rhythm context of the atrial-fibrillation gate (:func:`rhythm_context`, ``arrhythmia_gbm.af_gate``): no booster
#: reads them
AF_CONTEXT_FEATURES = ("af_irr", "af_pcl")
#: the features read from lead V1 (NaN in a record without a V1 channel; ``qrs_max_ms`` falls back to ``qrs_ms``)
V1_FEATURES = ("qrs_v1_ms", "corr_tpl_v1", "v1_pos_frac", "v1_init", "v1_term", "v1_npk", "v1_rprime", "v1_s_ms",
               "p_corr_v1")
BEAT_FEATURES: tuple[str, ...] = (RR_FEATURES + MORPH_FEATURES + WINDOW_FEATURES + P_FEATURES + LOCAL_FEATURES
                                  + AF_CONTEXT_FEATURES)


def without_v1(rows: pd.DataFrame) -> pd.DataFrame:
    """A copy of feature ``rows`` as a record without a V1 channel would give them: :data:`V1_FEATURES` NaN and
    ``qrs_max_ms`` = ``qrs_ms``. Used to train on every beat once with and once without V1, so that a missing V1
    (MIT-BIH 114 and 124 in DS1 carry V5 / V4; 100, 103, 117 and 123 in DS2) does not name a class."""
    out = rows.copy()
    for f in V1_FEATURES:
        if f in out:
            out[f] = np.nan
    if "qrs_max_ms" in out and "qrs_ms" in out:
        out["qrs_max_ms"] = out["qrs_ms"]
    return out


@dataclass(frozen=True, eq=False)
class PreparedRecord:
    """A record at :data:`FEATURE_FS`: band-passed limb lead ``ml`` (n,), ``v1`` (n,) or ``None``, their names."""

    record_id: str
    fs_in: float
    ml: np.ndarray
    v1: np.ndarray | None
    ml_name: str
    v1_name: str | None

    @property
    def n(self) -> int:
        return int(self.ml.shape[0])


def _channel(record: Record, names: tuple[str, ...]) -> tuple[np.ndarray, str] | None:
    lowered = [n.lower() for n in record.channel_names]
    for name in names:
        if name.lower() in lowered:
            j = lowered.index(name.lower())
            sig = record.signal if record.signal.ndim == 1 else record.signal[:, j]
            return sig, record.channel_names[j]
    return None


def prepare_record(record: Record, *, fs: float = FEATURE_FS) -> PreparedRecord:
    """Pick MLII (else II, else channel 0) and V1 by name, resample to ``fs`` and band-pass 0.5-40 Hz."""
    limb = _channel(record, LIMB_LEADS)
    if limb is None:
        limb = (record.signal if record.signal.ndim == 1 else record.signal[:, 0]), (record.channel_names or ("ch0",))[0]
    v1 = _channel(record, ("V1",)) if record.n_channels > 1 else None

    def prep(x: np.ndarray) -> np.ndarray:
        return clean(resample(x, record.fs, fs), fs, method="bandpass", lowcut=0.5, highcut=40.0)

    return PreparedRecord(record.record_id, float(record.fs), prep(limb[0]), prep(v1[0]) if v1 else None,
                          str(limb[1]), str(v1[1]) if v1 else None)


def annotated_beats(record: Record, *, fs: float = FEATURE_FS) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Every annotated beat (any QRS symbol): (sample at the record's rate, sample at ``fs``, symbols)."""
    ann = record.annotations
    keep = [i for i, s in enumerate(ann.symbol) if s in WFDB_BEAT_SYMBOLS]
    s = ann.sample[keep].astype(np.int64)
    return s, resample_index(s, record.fs, fs), tuple(ann.symbol[i] for i in keep)


def detected_beats(record: Record, prep: PreparedRecord, *, tolerance_s: float = 0.075,
                   ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """R peaks found by neurokit2 on the limb lead; each takes the symbol of an annotated beat within
    ``tolerance_s`` (``'?'`` when none): (sample at the record's rate, sample at :data:`FEATURE_FS`, symbols)."""
    fs = FEATURE_FS
    peaks = detect_rpeaks(prep.ml, fs)
    s_rec = resample_index(peaks, fs, record.fs)
    ann_rec, _, syms = annotated_beats(record)
    out = ["?"] * len(peaks)
    if ann_rec.size and peaks.size:
        k = np.clip(np.searchsorted(ann_rec, s_rec), 1, len(ann_rec) - 1) if len(ann_rec) > 1 else np.zeros(
            len(peaks), dtype=np.int64)
        for i, p in enumerate(s_rec):
            cands = [c for c in (k[i] - 1, k[i]) if 0 <= c < len(ann_rec)]
            c = min(cands, key=lambda c: abs(int(ann_rec[c]) - int(p)))
            if abs(int(ann_rec[c]) - int(p)) <= tolerance_s * record.fs:
                out[i] = syms[c]
    return s_rec, peaks.astype(np.int64), tuple(out)


# --------------------------------------------------------------------------------------------------------------
# RR context
# --------------------------------------------------------------------------------------------------------------
def rr_features(peaks: np.ndarray, fs: float, *, local: int = 10) -> pd.DataFrame:
    """RR context of every beat (columns :data:`RR_FEATURES`); ``peaks`` sorted sample indices at ``fs``.

    The first beat's pre-RR and the last beat's post-RR repeat their neighbour's. Ratios to the record median make
    the features invariant to a record-wide change of rate."""
    p = np.asarray(peaks, dtype=np.float64)
    n = p.size
    cols = {c: np.full(n, np.nan) for c in RR_FEATURES}
    if n < 3:
        return pd.DataFrame(cols)
    rr = np.diff(p) / fs
    pre = np.concatenate([[rr[0]], rr])
    post = np.concatenate([rr, [rr[-1]]])
    half = local // 2
    csum = np.concatenate([[0.0], np.cumsum(rr)])
    lo = np.clip(np.arange(n) - half, 0, rr.size)
    hi = np.clip(np.arange(n) + half, 0, rr.size)
    hi = np.maximum(hi, lo + 1)
    lo = np.minimum(lo, rr.size - 1)
    loc = (csum[hi] - csum[lo]) / (hi - lo)
    rec = float(np.median(rr))
    roll = pd.Series(pre).rolling(local + 1, center=True, min_periods=3)
    med = roll.median().to_numpy()
    cv = (roll.std() / roll.mean()).to_numpy()
    cols.update(pre_rr=pre, post_rr=post, local_rr=loc, rec_rr=np.full(n, rec), pre_rr_rec=pre / rec,
                post_rr_rec=post / rec, local_rr_rec=loc / rec, pre_local=pre / loc, post_pre=post / pre,
                pre_local_med=pre / med, local_cv=cv)
    return pd.DataFrame(cols)


# --------------------------------------------------------------------------------------------------------------
# Morphology
# --------------------------------------------------------------------------------------------------------------
def _envelope(x: np.ndarray, fs: float) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(np.abs(np.gradient(x)) * fs, size=max(1, int(round(0.012 * fs))))


def qrs_bounds(x: np.ndarray, peaks: np.ndarray, fs: float, *, frac: float = 0.15,
               env: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """QRS onset and offset (sample indices at ``fs``) of every R peak of the filtered signal ``x``.

    The absolute slope, smoothed over 12 ms, is searched in [-120, +200] ms around the peak: the QRS is the run of
    samples above ``frac`` x its maximum within +-60 ms of the peak, gaps shorter than 30 ms bridged."""
    env = _envelope(x, fs) if env is None else env
    n = x.shape[0]
    b, a, m, gap = int(0.12 * fs), int(0.2 * fs), int(0.06 * fs), int(0.03 * fs)
    on = np.zeros(len(peaks), dtype=np.int64)
    off = np.zeros(len(peaks), dtype=np.int64)
    for i, r in enumerate(np.asarray(peaks, dtype=np.int64)):
        lo, hi = max(0, r - b), min(n, r + a)
        if hi - lo < 4:
            on[i], off[i] = r, r
            continue
        seg = env[lo:hi]
        c = int(np.clip(r - lo, 0, hi - lo - 1))
        core = seg[max(0, c - m): c + m + 1]
        above = seg >= frac * float(core.max())
        idx = np.flatnonzero(above)
        pk = max(0, c - m) + int(np.argmax(core))
        # extend left / right from the envelope peak over runs of "above", bridging short gaps
        left = idx[idx <= pk]
        j = len(left) - 1
        while j > 0 and left[j] - left[j - 1] <= gap:
            j -= 1
        right = idx[idx >= pk]
        k = 0
        while k < len(right) - 1 and right[k + 1] - right[k] <= gap:
            k += 1
        on[i] = lo + (int(left[j]) if len(left) else pk)
        off[i] = lo + (int(right[k]) if len(right) else pk)
    return on, off


def _windows(x: np.ndarray, peaks: np.ndarray, pre: int, post: int) -> np.ndarray:
    xp = np.pad(x, (pre, post), mode="edge")
    idx = np.asarray(peaks, dtype=np.int64)[:, None] + np.arange(pre + post)[None, :]
    return xp[idx]


def _corr_rows(w: np.ndarray, tpl: np.ndarray) -> np.ndarray:
    a = w - w.mean(axis=1, keepdims=True)
    t = tpl - tpl.mean()
    den = np.sqrt((a * a).sum(axis=1) * (t * t).sum()) + 1e-12
    return (a @ t) / den


def _qrs_shape(w: np.ndarray, on: np.ndarray, off: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Shape of each beat's QRS inside [on, off] (indices into the rows of ``w``)."""
    from scipy.signal import find_peaks

    n = len(w)
    out = {k: np.full(n, np.nan) for k in ("pos_frac", "init", "term", "npk", "rprime", "s_ms", "ptp")}
    for i in range(n):
        q = w[i, on[i]: off[i] + 1]
        if q.size < 3:
            continue
        q = q - q[0]
        ptp = float(q.max() - q.min()) + 1e-9
        ab = np.abs(q).sum() + 1e-12
        k = max(1, int(round(0.3 * q.size)))
        pk, _ = find_peaks(np.concatenate([[q.min()], q, [q.min()]]), prominence=0.15 * ptp)
        pk = pk - 1
        deep = int(np.argmin(q))
        out["pos_frac"][i] = float(np.clip(q, 0, None).sum() / ab)
        out["init"][i] = float(q[:k].mean() / ptp)
        out["term"][i] = float(q[-k:].mean() / ptp)
        out["npk"][i] = float(((q[pk] > 0.1 * ptp) if pk.size else np.zeros(0, bool)).sum())
        out["rprime"][i] = float(any(p > deep and q[p] > 0.2 * ptp for p in pk))
        out["s_ms"][i] = float((q < -0.1 * ptp).sum() / fs * 1000.0)
        out["ptp"][i] = ptp
    return out


def morphology_features(prep: PreparedRecord, peaks: np.ndarray) -> pd.DataFrame:
    """Morphology of every beat (columns :data:`MORPH_FEATURES` and :data:`WINDOW_FEATURES`), see the module."""
    fs = FEATURE_FS
    peaks = np.clip(np.asarray(peaks, dtype=np.int64), 0, prep.n - 1)
    n = len(peaks)
    cols: dict[str, np.ndarray] = {c: np.full(n, np.nan) for c in MORPH_FEATURES + WINDOW_FEATURES}
    if n == 0:
        return pd.DataFrame(cols)
    pre, post = int(0.2 * fs), int(0.4 * fs)
    env = _envelope(prep.ml, fs)
    on, off = qrs_bounds(prep.ml, peaks, fs, frac=0.07, env=env)
    on_c, off_c = qrs_bounds(prep.ml, peaks, fs, frac=0.15, env=env)
    cols["qrs_core_ms"] = (off_c - on_c) / fs * 1000.0
    rel_on = np.clip(on - peaks + pre, 0, pre + post - 1)
    rel_off = np.clip(off - peaks + pre, 0, pre + post - 1)
    w = _windows(prep.ml, peaks, pre, post)
    qrs_ms = (off - on) / fs * 1000.0
    cols["qrs_ms"] = qrs_ms
    tpl = np.median(w, axis=0)
    cols["corr_tpl"] = _corr_rows(w, tpl)
    qa, qb = pre - int(0.08 * fs), pre + int(0.12 * fs)
    cols["corr_tpl_qrs"] = _corr_rows(w[:, qa:qb], tpl[qa:qb])
    shape = _qrs_shape(w, rel_on, rel_off, fs)
    amp_med = float(np.nanmedian(shape["ptp"])) or 1.0
    cols["amp_rec"] = shape["ptp"] / amp_med
    cols["ml_pos_frac"], cols["ml_term"], cols["ml_npk"] = shape["pos_frac"], shape["term"], shape["npk"]
    widths = qrs_ms
    if prep.v1 is not None:
        on1, off1 = qrs_bounds(prep.v1, peaks, fs, frac=0.1)
        cols["qrs_v1_ms"] = (off1 - on1) / fs * 1000.0
        u_on = np.clip(np.minimum(on, on1) - peaks + pre, 0, pre + post - 1)
        u_off = np.clip(np.maximum(off, off1) - peaks + pre, 0, pre + post - 1)
        w1 = _windows(prep.v1, peaks, pre, post)
        cols["corr_tpl_v1"] = _corr_rows(w1, np.median(w1, axis=0))
        s1 = _qrs_shape(w1, u_on, u_off, fs)
        for k in ("pos_frac", "init", "term", "npk", "rprime", "s_ms"):
            cols[f"v1_{k}"] = s1[k]
        widths = np.fmax(qrs_ms, cols["qrs_v1_ms"])
    cols["qrs_max_ms"] = widths
    cols["qrs_rec"] = qrs_ms / (float(np.median(qrs_ms)) or 1.0)
    step = int(0.04 * fs)
    for j in range(_N_WIN):
        cols[f"w{j:02d}"] = w[:, j * step: (j + 1) * step].mean(axis=1) / amp_med
    return pd.DataFrame(cols)


#: the atrial window: the 200 ms before the QRS onset (the P wave of a beat with a normal PR interval)
P_WINDOW_S = 0.2


def _pre_qrs(x: np.ndarray, onsets: np.ndarray, fs: float) -> np.ndarray:
    """The :data:`P_WINDOW_S` before each QRS onset, linear trend (baseline, T-wave slope) removed: (n, k)."""
    k = round(P_WINDOW_S * fs)
    xp = np.pad(x, (k, 0), mode="edge")
    w = xp[np.asarray(onsets, dtype=np.int64)[:, None] + np.arange(k)[None, :]]
    t = np.linspace(-1.0, 1.0, k)
    slope = (w * t).sum(axis=1, keepdims=True) / (t * t).sum()
    return w - w.mean(axis=1, keepdims=True) - slope * t


def p_wave_features(prep: PreparedRecord, peaks: np.ndarray, rr: pd.DataFrame, mo: pd.DataFrame) -> pd.DataFrame:
    """SVEB features (columns :data:`P_FEATURES`) used inter-patient (de Chazal 2004, Mar 2011): the 200 ms before
    the QRS onset compared with the record's median of that window (``p_corr``, ``p_corr_v1``: an ectopic or
    absent P wave correlates poorly), its peak-to-peak against the record median (``p_amp_rec``) and against the
    beat's QRS (``p_qrs_amp``), the template's own P / QRS ratio (``tpl_p_amp``: about 0 in atrial fibrillation,
    where a short RR tells little), the pause after the beat (``post_local`` = post-RR / local RR) and
    ``prem_normal`` = max(0, 1 - pre-RR / local median pre-RR) x QRS-template correlation (premature but normal
    QRS: the SVEB pattern)."""
    fs = FEATURE_FS
    peaks = np.clip(np.asarray(peaks, dtype=np.int64), 0, prep.n - 1)
    n = len(peaks)
    cols = {c: np.full(n, np.nan) for c in P_FEATURES}
    if n == 0:
        return pd.DataFrame(cols)
    on, _ = qrs_bounds(prep.ml, peaks, fs, frac=0.07)
    on = np.minimum(on, peaks)
    pw = _pre_qrs(prep.ml, on, fs)
    tpl = np.median(pw, axis=0)
    cols["p_corr"] = _corr_rows(pw, tpl)
    ptp = pw.max(axis=1) - pw.min(axis=1)
    cols["p_amp_rec"] = ptp / (float(np.median(ptp)) or 1.0)
    w = _windows(prep.ml, peaks, int(0.06 * fs), int(0.06 * fs))
    q_ptp = w.max(axis=1) - w.min(axis=1)
    cols["p_qrs_amp"] = ptp / np.maximum(q_ptp, 1e-9)
    q_med = float(np.median(q_ptp)) or 1.0
    cols["tpl_p_amp"] = np.full(n, float(tpl.max() - tpl.min()) / q_med)
    if prep.v1 is not None:
        pw1 = _pre_qrs(prep.v1, on, fs)
        cols["p_corr_v1"] = _corr_rows(pw1, np.median(pw1, axis=0))
    cols["post_local"] = (rr["post_rr"] / rr["local_rr"]).to_numpy()
    prem = np.clip(1.0 - rr["pre_local_med"].to_numpy(dtype=np.float64), 0.0, None)
    cols["prem_normal"] = prem * mo["corr_tpl_qrs"].to_numpy(dtype=np.float64)
    return pd.DataFrame(cols)


def _previous_rows(n: int, local: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, local) indices of the ``local`` beats before each beat (clipped at 0) and whether each exists."""
    idx = np.arange(n)[:, None] - np.arange(1, local + 1)[None, :]
    return np.clip(idx, 0, None), idx >= 0


def local_rhythm_features(prep: PreparedRecord, peaks: np.ndarray, rr: pd.DataFrame, *, local: int = 10,
                          ) -> pd.DataFrame:
    """Local-rhythm SVEB features (columns :data:`LOCAL_FEATURES`; de Chazal 2004, Llamedo & Martinez 2011): the
    reference is the ``local`` beats **before** the beat (so a run of ectopic beats after it does not move it).

    ``pre_prev10`` / ``post_prev10``: pre- / post-RR over the mean of the previous ``local`` pre-RRs (NaN for the
    first beat); ``comp_pause``: (pre-RR + post-RR) / (2 x that mean), about 1 for a full compensatory pause (the
    ventricular pattern), below 1 when an atrial beat resets the sinus node; ``pre_prev1``: pre-RR over the
    previous pre-RR (a sudden shortening); ``p_corr_local``: correlation of the 200 ms before the QRS onset
    (:func:`_pre_qrs`) with the median of that window over the previous ``local`` beats, ``p_amp_local``: its
    peak-to-peak over theirs (an ectopic or hidden P wave differs from the P waves just before it even when the
    record's median P is odd)."""
    fs = FEATURE_FS
    peaks = np.clip(np.asarray(peaks, dtype=np.int64), 0, prep.n - 1)
    n = len(peaks)
    cols = {c: np.full(n, np.nan) for c in LOCAL_FEATURES}
    if n < 3:
        return pd.DataFrame(cols)
    pre = rr["pre_rr"].to_numpy(dtype=np.float64)
    post = rr["post_rr"].to_numpy(dtype=np.float64)
    idx, ok = _previous_rows(n, local)
    cnt = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(cnt > 0, np.where(ok, pre[idx], 0.0).sum(axis=1) / np.maximum(cnt, 1), np.nan)
        cols["pre_prev10"] = pre / ref
        cols["post_prev10"] = post / ref
        cols["comp_pause"] = (pre + post) / (2.0 * ref)
        cols["pre_prev1"] = np.concatenate([[np.nan], pre[1:] / pre[:-1]])
    on, _ = qrs_bounds(prep.ml, peaks, fs, frac=0.07)
    pw = _pre_qrs(prep.ml, np.minimum(on, peaks), fs)
    ptp = pw.max(axis=1) - pw.min(axis=1)
    for i in range(1, n):
        j = idx[i][ok[i]]
        tpl = np.median(pw[j], axis=0)
        cols["p_corr_local"][i] = _corr_rows(pw[i: i + 1], tpl)[0]
        cols["p_amp_local"][i] = ptp[i] / max(float(np.median(ptp[j])), 1e-9)
    return pd.DataFrame(cols)


#: beats around each beat whose medians make :data:`AF_CONTEXT_FEATURES`
AF_CONTEXT_BEATS = 21


def rhythm_context(rr: pd.DataFrame, lo: pd.DataFrame, *, beats: int = AF_CONTEXT_BEATS) -> pd.DataFrame:
    """Label-free rhythm context (columns :data:`AF_CONTEXT_FEATURES`) over the ``beats`` beats centred on each
    beat: ``af_irr`` = median of |pre-RR - previous pre-RR| / local RR (high in atrial fibrillation and in
    bigeminy, low around an isolated premature beat), ``af_pcl`` = median of ``p_corr_local`` (low without a
    consistent P wave, as in atrial fibrillation / flutter)."""
    pre = rr["pre_rr"].to_numpy(dtype=np.float64)
    d = np.abs(np.diff(pre, prepend=pre[:1])) / rr["local_rr"].to_numpy(dtype=np.float64)
    roll = {"af_irr": d, "af_pcl": lo["p_corr_local"].to_numpy(dtype=np.float64)}
    return pd.DataFrame({k: pd.Series(v).rolling(beats, center=True, min_periods=5).median().to_numpy()
                         for k, v in roll.items()})


def beat_features(prep: PreparedRecord, peaks: np.ndarray) -> pd.DataFrame:
    """RR, morphology and SVEB features (columns :data:`BEAT_FEATURES`) of sorted R peaks at :data:`FEATURE_FS`."""
    peaks = np.asarray(peaks, dtype=np.int64)
    rr = rr_features(peaks, FEATURE_FS)
    mo = morphology_features(prep, peaks)
    pw = p_wave_features(prep, peaks, rr, mo)
    lo = local_rhythm_features(prep, peaks, rr)
    af = rhythm_context(rr, lo)
    return pd.concat([rr, mo, pw, lo, af], axis=1)[list(BEAT_FEATURES)]


def snap_to_detected(s_f: np.ndarray, detected: np.ndarray, *, tolerance_s: float = 0.075,
                     fs: float = FEATURE_FS) -> np.ndarray:
    """Move each sorted beat position ``s_f`` to the nearest detected R peak within ``tolerance_s`` (annotated
    fiducial points of ectopic beats often sit off the peak); positions with no peak nearby, or whose move would
    not keep them strictly increasing, stay where they are."""
    s_f = np.asarray(s_f, dtype=np.int64)
    det = np.sort(np.asarray(detected, dtype=np.int64))
    if det.size == 0 or s_f.size == 0:
        return s_f.copy()
    k = np.searchsorted(det, s_f)
    left, right = det[np.clip(k - 1, 0, det.size - 1)], det[np.clip(k, 0, det.size - 1)]
    near = np.where(np.abs(left - s_f) <= np.abs(right - s_f), left, right)
    out = np.where(np.abs(near - s_f) <= tolerance_s * fs, near, s_f)
    bad = np.concatenate([[False], np.diff(out) <= 0])
    out[bad] = s_f[bad]
    if (np.diff(out) <= 0).any():  # still not increasing: keep the annotations
        return s_f.copy()
    return out


def record_beat_table(record: Record, *, peaks: str = "annotations", prep: PreparedRecord | None = None,
                      snap: bool = False) -> pd.DataFrame:
    """One row per beat of ``record``: ``record``, ``sample`` (record rate), ``sample_f`` (at :data:`FEATURE_FS`),
    ``symbol``, then :data:`BEAT_FEATURES`. ``peaks``: ``'annotations'`` (every annotated beat; RR context uses all
    of them) or ``'detect'`` (neurokit2 R peaks, symbols matched within 75 ms, ``'?'`` otherwise). ``snap`` (with
    annotations): features at the nearest neurokit2 R peak within 75 ms (:func:`snap_to_detected`); ``sample``
    stays the annotated one."""
    prep = prep or prepare_record(record)
    if peaks == "detect":
        s_rec, s_f, syms = detected_beats(record, prep)
    else:
        s_rec, s_f, syms = annotated_beats(record)
    order = np.argsort(s_f, kind="stable")
    s_rec, s_f = s_rec[order], s_f[order]
    syms = tuple(syms[i] for i in order)
    if snap and peaks != "detect":
        s_f = snap_to_detected(s_f, detect_rpeaks(prep.ml, FEATURE_FS))
    feats = beat_features(prep, s_f)
    head = pd.DataFrame({"record": record.record_id, "sample": s_rec, "sample_f": s_f, "symbol": list(syms)})
    return pd.concat([head, feats], axis=1)


__all__ = [
    "AF_CONTEXT_BEATS",
    "AF_CONTEXT_FEATURES",
    "BEAT_FEATURES",
    "FEATURE_FS",
    "LOCAL_FEATURES",
    "MORPH_FEATURES",
    "P_FEATURES",
    "RR_FEATURES",
    "V1_FEATURES",
    "WINDOW_FEATURES",
    "PreparedRecord",
    "annotated_beats",
    "beat_features",
    "detected_beats",
    "local_rhythm_features",
    "morphology_features",
    "p_wave_features",
    "prepare_record",
    "qrs_bounds",
    "without_v1",
    "record_beat_table",
    "rhythm_context",
    "rr_features",
    "snap_to_detected",
]
