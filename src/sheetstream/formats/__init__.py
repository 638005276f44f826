"""File formats: byte streams <-> rows. Nothing here knows of HTTP, databases or the rest of sheetstream.

:mod:`.registry` names them; one module (or package) per format.
"""

from .registry import FORMATS, XLSX, Format, UnknownFormat, by_extension, by_media_type, detect, get

__all__ = ["FORMATS", "XLSX", "Format", "UnknownFormat", "by_extension", "by_media_type", "detect", "get"]
