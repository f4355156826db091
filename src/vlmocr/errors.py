"""One exception hierarchy for the whole toolkit.

Users catch `VlmocrError` for anything vlmocr raises on purpose, or a narrower class
when they want to handle one stage's failures. Every message says what was wrong and,
where possible, how to fix it (the file, line, field or flag).
"""

from __future__ import annotations


class VlmocrError(Exception):
    """Base class for every error vlmocr raises on purpose."""


class ConfigError(VlmocrError):
    """A configuration value, file or flag is invalid."""


class DatasetError(VlmocrError):
    """A dataset is missing, malformed or has too many bad records."""


class ImageError(DatasetError):
    """An image cannot be read safely (format, size, corruption, location)."""


class UnsafePathError(DatasetError):
    """A path in a dataset points outside the folder it must stay in."""


class MissingDependencyError(VlmocrError):
    """An optional dependency needed by this stage is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs '{package}', which is not installed. "
            f"Install it with: pip install 'vlmocr[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ModelError(VlmocrError):
    """A model directory is incomplete, inconsistent or cannot be loaded."""


class TrainingError(VlmocrError):
    """Training cannot start or had to stop (pre-flight failure, NaN loss, ...)."""


class ExportError(VlmocrError):
    """Export failed or its verification found a problem."""


class ServerError(VlmocrError):
    """The inference server failed to start, died, or answered unusably."""


class ExtractionError(VlmocrError):
    """A model answer could not be turned into a valid result."""


class EvaluationError(VlmocrError):
    """Predictions and gold data cannot be scored together."""
