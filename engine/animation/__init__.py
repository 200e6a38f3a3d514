"""What the face does at every frame time: controls, presets, transitions, idle life, schedules."""
