"""The domain core: pure Python, no I/O, stdlib only."""
