"""Compare several experiment configs: `python experiments/compare.py experiments/configs/*.yaml`.

Same as `recsys compare --configs ...`; the runs appear side by side in one MLflow experiment.
"""

import sys

from training.compare import compare

if __name__ == "__main__":
    paths = sys.argv[1:] or ["experiments/configs/popularity.yaml", "experiments/configs/buy_again.yaml"]
    print(compare(paths))
