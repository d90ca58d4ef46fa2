"""The Python source analyser (libcst)."""
