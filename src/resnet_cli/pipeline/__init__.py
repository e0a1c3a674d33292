"""The work itself: the local engine (``local``: decode threads, batches, the classifier,
records in order) and the Ray job (``ray_job``). Neither imports torch; the runtimes do."""
