"""Issue 8.2: 1, 2 and 3 recurrent cLIF layers with and without flossing (see figures/multilayer.py).

python figures/fig_multilayer.py [--workers 2] [--quick]
"""

import multilayer

if __name__ == "__main__":
    multilayer.main()
