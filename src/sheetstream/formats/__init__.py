"""File formats: byte streams <-> rows. Nothing here knows of HTTP, databases or the rest of sheetstream."""
