"""In-process molecular dynamics with a DenSNet model (many replicas per model call)."""
