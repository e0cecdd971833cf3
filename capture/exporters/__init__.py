"""Session files -> other tools' layouts (``radgaze export``): REFLACX's, so a recorded reading round-trips."""
