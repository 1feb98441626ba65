"""Layer 5: plotly figure builders (figures are returned, never shown)."""
