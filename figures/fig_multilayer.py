"""Issue 8.2: 1, 2 and 3 recurrent cLIF layers with and without flossing (see figures/multilayer.py).

    python figures/fig_multilayer.py [--workers 2] [--quick]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multilayer  # noqa: E402

if __name__ == "__main__":
    multilayer.main()
