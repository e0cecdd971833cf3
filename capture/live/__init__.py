"""Live sources: LSL gaze, microphone, ASR, the headless recorder, the simulated tracker."""
