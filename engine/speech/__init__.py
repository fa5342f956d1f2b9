"""Offline speech synthesis with phone timings, for the synthetic emotional corpus."""
