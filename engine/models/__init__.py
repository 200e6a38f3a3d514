"""The models folder: layout, download from HuggingFace, verification. CLI: python -m engine.models."""
