"""Layer 4: the 12-lead report: layout table, ECG check, lead detection, localisation scores, the explain pipeline,
batch prediction, PDF, synthetic reports (never imports signals)."""
