"""Train an interactive segmentation model: `python train.py model=... data=... [overrides]`."""

import hydra
from omegaconf import DictConfig

# light (hydra and omegaconf only); also registers the resolver of the --help template
from iseg.runtime import user_errors
from iseg.launchers import quiet_schema_matching


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # a mistake in the command line, config or files: its message, no traceback; torch and Lightning
    # load only here, so that --help stays quick
    with user_errors():
        from iseg.training.run import train

        return train(cfg)


if __name__ == "__main__":
    quiet_schema_matching()
    main()
