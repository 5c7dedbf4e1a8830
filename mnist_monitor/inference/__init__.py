"""A drawn digit -> every model's answer, and the layer views that show how each model saw it.
Raises domain errors; the web layer turns them into HTTP answers."""
