"""The engine's exceptions. Messages say what was wrong and what to do about it."""


class EngineError(Exception):
    """Base class for errors raised by the engine."""


class AudioFormatError(EngineError, ValueError):
    """Audio that cannot be interpreted: wrong shape, dtype or sample rate."""


class AvatarError(EngineError):
    """An avatar bundle that is missing, malformed or of an unknown format version."""
