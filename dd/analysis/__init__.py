"""Reading results: curve kinds (``curves``), the aggregator (``aggregate``), figures
(``plots``), the report, DuckDB queries, status and export. Nothing here trains."""
