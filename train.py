"""Train an interactive segmentation model: `python train.py model=... data=... [overrides]`."""

import hydra
from omegaconf import DictConfig

from iseg.training.run import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
