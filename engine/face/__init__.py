"""Face tracking: MediaPipe FaceMesh -> iBUG-68 landmarks, head pose and frontal landmarks."""
