"""Where finished spans go: the queue and writer (``_pipeline``), rows (``_rows``), destinations."""
