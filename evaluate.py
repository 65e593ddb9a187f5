"""Evaluate a checkpoint under the NoC protocol: `python evaluate.py checkpoint=PATH data=grabcut`.

Several sets in one table: `python evaluate.py checkpoint=PATH 'data=[grabcut,berkeley,davis]'`;
options in conf/eval/evaluate.yaml (protocol, predictor=ritm|fcfi, fabric.devices, logger=wandb).
"""

import hydra
from omegaconf import DictConfig

from iseg.evaluation.runner import evaluate


@hydra.main(version_base="1.3", config_path="conf/eval", config_name="evaluate")
def main(cfg: DictConfig) -> dict[str, dict[str, float]]:
    return evaluate(cfg)


if __name__ == "__main__":
    main()
