"""The face pipeline: bytes -> image (intake) -> faces (detect) -> FaceCrop (crop); paste-back."""
