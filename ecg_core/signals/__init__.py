"""Layer 4: ECG signals: records, filters, beats and rhythm segments, spectral images, arrhythmia inference
(never imports reports)."""
