"""The run engine: runs work units through the stages into a sink (see DESIGN.md §2)."""
