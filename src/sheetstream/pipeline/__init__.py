"""What sheetstream does with files and tables: exports, imports, validation, and the import job's life cycle."""
