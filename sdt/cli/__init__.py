"""Layer 4: the command line (`sdt`, `python -m sdt`, `python3 main.py`) and its console reporting."""
