"""Layer 0: what every layer needs: errors, paths, label presets, the frozen-config base, the atomic writer,
hashing, formatting."""
