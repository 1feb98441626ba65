"""Layer 3: attribution maps of any model: the Grad-CAM family and saliency, the explainer, overlays, faithfulness."""
