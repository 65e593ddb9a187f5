"""Evaluate a checkpoint under the NoC protocol: `python evaluate.py checkpoint=PATH data=grabcut`.

Several sets in one table: `python evaluate.py checkpoint=PATH 'data=[grabcut,berkeley,davis]'`;
options in conf/eval/evaluate.yaml (protocol, predictor=ritm|fcfi, fabric.devices, logger=wandb).
"""

import sys

import hydra
from omegaconf import DictConfig

from iseg.evaluation.runner import data_choice_error, evaluate
from iseg.runtime import user_errors


@hydra.main(version_base="1.3", config_path="conf/eval", config_name="evaluate")
def main(cfg: DictConfig) -> dict[str, dict[str, float]]:
    with user_errors():  # a mistake in the command line, config or files: its message, no traceback
        return evaluate(cfg)


if __name__ == "__main__":
    if error := data_choice_error(sys.argv[1:]):  # list only evaluation sets, not conf/data's training sets
        sys.exit(error)
    main()
