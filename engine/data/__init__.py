"""Data sets: loaders for RAVDESS, MEAD and generic talking clips, labels and splits."""
