"""Hardware-in-the-loop bench: the real firmware in the real MicroPython, emulated premises."""
