"""Local fake servers speaking each destination's real wire format, for tests and the local demo."""
