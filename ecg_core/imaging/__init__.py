"""Layer 1: report images as pixels: safe loading, preprocessing (+ cache), augmentation and balancing plans."""
