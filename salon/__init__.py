"""Core of the hair-salon scheduler: settings, composition root, CLI and the write path."""
