"""The pure core: model, replay state, policies and ports. No I/O libraries here."""
