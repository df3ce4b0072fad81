"""Exception hierarchy: the library raises these, the CLI turns them into ``Error: ...``."""

from __future__ import annotations


class FlickermineError(Exception):
    """Base class of every error flickermine raises on purpose."""


class InvalidDetectionsError(FlickermineError, ValueError):
    """Detections that break the contract of :class:`~flickermine.structures.VideoDetections`."""


class DetectionFileError(FlickermineError):
    """A detection file that cannot be read (garbled, truncated, wrong format)."""


class VideoError(FlickermineError):
    """A video that cannot be opened or decoded."""


class OutputExistsError(FlickermineError):
    """An output that already exists and would be overwritten."""


class ConfigError(FlickermineError, ValueError):
    """Invalid parameters or inconsistent inputs."""


class DetectError(FlickermineError):
    """A detector that cannot be built or that returns something unusable."""


class CocoError(FlickermineError, ValueError):
    """An invalid COCO file or a request that does not fit it."""


class ModelError(FlickermineError):
    """A model or checkpoint that cannot be built or loaded."""


class AuditError(FlickermineError, ValueError):
    """Ground truth or mining output that cannot be audited (names file and line)."""


class ReportError(FlickermineError):
    """A mining output that cannot be reported (names the file)."""


class MiningOutputError(FlickermineError, ValueError):
    """A folder or file that is not (or no longer) a complete mining output."""
