"""LivePortrait in our own PyTorch: networks, keypoint maths, weights."""
