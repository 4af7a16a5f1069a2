"""Handler apps of xingqiao's tests (``[router] handlers_dir`` points here)."""
