"""The five agents of the pipeline, each on the shared `Agent` base."""
