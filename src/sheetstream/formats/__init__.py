"""File formats: byte streams <-> rows. Nothing here knows of HTTP, databases or the rest of sheetstream.

:mod:`.registry` names them; one module (or package) per format.
"""

from .registry import CSV, FORMATS, XLSX, Format, FormatError, UnknownFormat, by_extension, by_media_type, detect, get

__all__ = ["CSV", "FORMATS", "XLSX", "Format", "FormatError", "UnknownFormat", "by_extension", "by_media_type", "detect",
           "get"]
