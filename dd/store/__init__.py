"""Where results live: paths on local folders and results URIs with atomic writes (``paths``),
the one schema of a row (``schema``) and a sweep's folder of Parquet files (``sweep``). It
sits under the engine, which writes checkpoints through its atomic files, and knows nothing
of JAX."""
