"""Names of the training stages and losses (no torch import: the CLI parser needs them)."""

STAGES = ("emotion", "content", "disentangle", "landmarks")
LOSSES = ("cross", "self", "cla", "con")  # eq. 2-5
DEFAULT_STEPS = {"emotion": 5000, "content": 2500, "disentangle": 2500, "landmarks": 3000}
