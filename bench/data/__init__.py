"""Data: the procedural shapes world, the reader of real-data manifests, and the shared loader."""
