"""The bottom layer: errors, paths, atomic files, names, the cell identity. Imports nothing else of logitdiff."""
