"""S2M training through train.py's config: model=s2m_resnet50 trains on synthetic, folder and
COCO+LVIS fixture data and on the static-set + LVIS mixture; the experiment preset holds the
reference recipe; VainF's DeepLabV3+ checkpoint initialises the network with the 3 -> 6 expansion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from iseg.data.mixture import DatasetMixture
from iseg.interaction.scribbles.sampler import S2MSampler
from iseg.models.checkpoints import CheckpointError, load_model
from iseg.models.s2m import S2MNet
from iseg.models.s2m.init import load_deeplab_init
from iseg.models.s2m.loss import S2MLossTerm
from iseg.training.run import train
from tests.conftest import compose_train_config

FAST = [
    "model=s2m_resnet50", "data.batch_size=2", "data.num_workers=0", "data.persistent_workers=false",
    "model.protocol_samples=1", "model.protocol.max_clicks=2", "trainer.max_epochs=1", "+trainer.limit_train_batches=1",
    "+trainer.limit_val_batches=1",
    "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "validate_before_training=false",
    "~callbacks.model_summary",
]
SMALL_CROPS = ["data.train_dataset.augmentation.crop_size=[48,64]", "data.val_dataset.augmentation.crop_size=[48,64]"]


def _write_data(data: str, root: Path) -> list[str]:
    """Fixture files for ``data`` under ``root``; the overrides that select them."""
    if data == "folder":
        from tests.folder_files import write_folder_dataset

        write_folder_dataset(root, num_images=6, image_size=(48, 64))
        return ["data=folder", f"data.root={root}", "data.train_dataset.source.val_fraction=0.34", *SMALL_CROPS]
    if data == "cocolvis":
        from tests.cocolvis_files import write_preprocessed_cocolvis

        write_preprocessed_cocolvis(root)
        return ["data=cocolvis", f"data.root={root}", "data.train_dataset.epoch_len=2", "data.val_dataset.epoch_len=2",
                "data.train_dataset.min_object_area=20", "data.val_dataset.min_object_area=20", *SMALL_CROPS]
    return ["data.train_dataset.source.image_size=[48,64]", "data.val_dataset.source.image_size=[48,64]",
            "data.val_dataset.source.num_samples=2", *SMALL_CROPS]


@pytest.mark.slow
@pytest.mark.parametrize("data", ["synthetic", "folder", "cocolvis"])
def test_s2m_trains_on_each_training_set(data: str, tmp_path: Path) -> None:
    cfg = compose_train_config(tmp_path / "run", [*FAST, *_write_data(data, tmp_path / data)], tiny=False)
    assert cfg.data.train_dataset.sampler._target_.endswith("S2MSampler")
    assert "maps_scale_init" not in cfg.model.net  # the synthetic recipe's click settings stay out
    train(cfg)
    net = load_model(next((tmp_path / "run" / "checkpoints").glob("*.ckpt")))
    assert type(net) is S2MNet


def test_training_batch_and_loss_follow_the_reference(tmp_path: Path) -> None:
    """The batch carries the sampler's previous mask and scribbles, the network sees them, and the
    loss is the bootstrapped CE of the aggregated logits at the module's global step."""
    cfg = compose_train_config(tmp_path, [*FAST, *_write_data("synthetic", tmp_path)], tiny=False)
    module, datamodule = instantiate(cfg.model), instantiate(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["prev_mask"].shape == (2, 1, 48, 64) and batch["scribbles"].shape == (2, 2, 48, 64)
    seen = {}
    module.net.register_forward_hook(lambda net, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    torch.manual_seed(0)
    loss = module.training_step(batch, 0)
    assert torch.equal(seen["prev_mask"], batch["prev_mask"].float()) and torch.equal(seen["scribbles"], batch["scribbles"].float())
    term = module.loss_terms["instance"]
    assert isinstance(term, S2MLossTerm) and term.loss.fraction(20000) == pytest.approx(0.575)
    module.net.eval()  # dropout off: the same logits again
    with torch.no_grad():
        outputs = module(batch["images"], module.inputs.training_prompts(batch), batch["prev_mask"].float())
    assert torch.isfinite(loss) and float(term(outputs, batch["instances"], step=0)) > 0


def test_experiment_holds_the_reference_recipe(tmp_path: Path) -> None:
    cfg = compose_train_config(tmp_path, ["experiment=s2m_resnet50_lvis_static"], tiny=False)
    assert cfg.model.optimizer.lr == 1e-4 and cfg.model.optimizer.weight_decay == 1e-7
    assert list(cfg.model.scheduler.milestones) == [] and cfg.model.max_num_next_clicks == 0
    assert cfg.trainer.max_steps == 80000 and cfg.data.batch_size == 32
    loss = cfg.model.losses.instance.loss
    assert (loss.start_warm, loss.end_warm, loss.top_p) == (10000, 30000, 0.15)
    assert cfg.data.train_dataset._target_ == "iseg.data.mixture.DatasetMixture"
    assert cfg.data.train_dataset.sampler._target_.endswith("S2MSampler")
    assert dict(cfg.data.train_dataset.repeats) == {"fss": 2, "duts_tr": 2, "duts_te": 2, "ecssd": 2, "big": 10, "hrsod": 10, "lvis": 1}
    for part in cfg.data.train_dataset.datasets.values():
        assert list(part.augmentation.crop_size) == [480, 480]
    assert list(cfg.data.train_dataset.datasets.lvis.augmentation.scale) == [0.8, 1.0]


@pytest.mark.slow
def test_static_and_lvis_mixture_trains(tmp_path: Path) -> None:
    """data=s2m_static_lvis with two folder sets and the COCO+LVIS fixture (the other sets off)."""
    from tests.cocolvis_files import write_preprocessed_cocolvis
    from tests.folder_files import write_folder_dataset

    write_folder_dataset(tmp_path / "static" / "ecssd", num_images=3, image_size=(48, 64), num_instances=(1, 1))
    write_folder_dataset(tmp_path / "static" / "big", num_images=2, image_size=(48, 64), num_instances=(1, 1), seed=1)
    write_preprocessed_cocolvis(tmp_path / "cocolvis")
    parts = "data.train_dataset.datasets"
    overrides = [
        *FAST, "data=s2m_static_lvis", f"paths.data_dir={tmp_path}",
        *(f"{parts}.{name}=null" for name in ("fss", "duts_tr", "duts_te", "hrsod")),
        *(f"{parts}.{name}.augmentation.crop_size=[48,64]" for name in ("ecssd", "big", "lvis")),
        f"{parts}.lvis.min_object_area=20", "data.val_dataset.min_object_area=20", "data.val_dataset.epoch_len=2",
        "data.val_dataset.augmentation.crop_size=[48,64]",
    ]
    cfg = compose_train_config(tmp_path / "run", overrides, tiny=False)
    datamodule = instantiate(cfg.data)
    mixture = datamodule.train_dataset
    assert isinstance(mixture, DatasetMixture)
    # 2 x ecssd (3 images) + 10 x big (2) + 1 x lvis (2 images, one pass)
    assert len(mixture) == 6 + 20 + 2
    assert mixture.weights() == pytest.approx({"ecssd": 6 / 28, "big": 20 / 28, "lvis": 2 / 28})
    assert all(isinstance(dataset.sampler, S2MSampler) for _, dataset, _ in mixture.parts)
    train(cfg)


def test_mixture_refuses_unknown_names_and_empty_mixtures(tmp_path: Path) -> None:
    cfg = compose_train_config(tmp_path, [*FAST, *_write_data("synthetic", tmp_path)], tiny=False)
    dataset = instantiate(cfg.data.train_dataset)
    with pytest.raises(KeyError, match=r"repeats names datasets \['lvis'\]"):
        DatasetMixture({"synthetic": dataset}, repeats={"lvis": 1})
    with pytest.raises(ValueError, match="no dataset left"):
        DatasetMixture({"synthetic": dataset, "other": None}, repeats={"synthetic": 0})
    mixture = DatasetMixture({"a": dataset, "b": dataset}, repeats={"a": 1, "b": 3}, epoch_len=5, seed=0)
    assert len(mixture) == 5 and mixture.weights() == {"a": 0.25, "b": 0.75}
    assert set(mixture.compact_item(0)) == {"images", "prev_mask", "scribbles", "instances"}


# ------------------------------------------------------------------ VainF initialisation


@pytest.fixture(scope="module")
def s2m_net() -> S2MNet:
    torch.manual_seed(1)
    return S2MNet()


@pytest.fixture(scope="module")
def s2m_state(s2m_net: S2MNet) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in s2m_net.state_dict().items()}


def _vainf_checkpoint(path: Path, s2m_state: dict[str, torch.Tensor], num_classes: int = 21) -> dict[str, torch.Tensor]:
    """A file in VainF/DeepLabV3Plus-Pytorch's layout: a 3-channel conv1 and a 21-class VOC classifier."""
    state = {key: value.clone() for key, value in s2m_state.items()}
    state["backbone.conv1.weight"] = torch.randn(64, 3, 7, 7)
    state["classifier.classifier.3.weight"] = torch.randn(num_classes, 256, 1, 1)
    state["classifier.classifier.3.bias"] = torch.randn(num_classes)
    torch.save({"cur_itrs": 30000, "model_state": state, "optimizer_state": {}, "best_score": 0.77}, path)
    return state


def test_vainf_checkpoint_initialises_with_the_three_to_six_expansion(tmp_path: Path, s2m_state) -> None:
    path = tmp_path / "best_deeplabv3plus_resnet50_voc_os16.pth"
    source = _vainf_checkpoint(path, s2m_state)
    torch.manual_seed(0)
    net = S2MNet(pretrained=str(path))
    state = net.state_dict()
    conv1 = state["backbone.conv1.weight"]
    assert conv1.shape == (64, 6, 7, 7) and torch.equal(conv1[:, :3], source["backbone.conv1.weight"])
    extra = conv1[:, 3:].reshape(64, -1)
    torch.testing.assert_close(extra @ extra.T, torch.eye(64), atol=1e-5, rtol=0)  # orthogonal rows, not zeros
    head = state["classifier.classifier.3.weight"].reshape(1, -1)
    assert head.shape == (1, 256) and float(head.norm()) == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(state["classifier.classifier.3.bias"], torch.zeros(1))
    same = [key for key in state if key not in ("backbone.conv1.weight", "classifier.classifier.3.weight", "classifier.classifier.3.bias")]
    assert all(torch.equal(state[key], source[key]) for key in same)
    # "module." prefixes (a DataParallel save) are accepted; the draws follow torch's seed
    prefixed = {"model_state": {f"module.{k}": v for k, v in torch.load(path)["model_state"].items()}}
    torch.save(prefixed, tmp_path / "prefixed.pth")
    torch.manual_seed(0)
    other = S2MNet()  # what S2MNet(pretrained=...) does: build, then load
    load_deeplab_init(other, tmp_path / "prefixed.pth")
    assert torch.equal(other.state_dict()["backbone.conv1.weight"], conv1)


def test_bad_initialisation_files_are_named(tmp_path: Path, s2m_net, s2m_state) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other.pth: not a VainF DeepLabV3\+ checkpoint \(no 'model_state'"):
        load_deeplab_init(s2m_net, tmp_path / "other.pth")
    state = _vainf_checkpoint(tmp_path / "vainf.pth", s2m_state)
    del state["classifier.aspp.project.0.weight"]
    torch.save({"model_state": state}, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=r"(?s)cut.pth \(VainF DeepLabV3\+ initialisation\).*missing keys \(1\)"):
        load_deeplab_init(s2m_net, tmp_path / "cut.pth")
    with pytest.raises(ValueError, match="give the path of VainF's DeepLabV3\\+ ResNet-50 checkpoint"):
        S2MNet(pretrained=True)


def test_reference_static_layout_becomes_folder_sets(tmp_path: Path) -> None:
    """The download's <stem>.jpg + <stem>.png folders (FSS-1000 per class) -> images/ + masks/ links."""
    import cv2

    from iseg.data.folder import FolderSource
    from iseg.data.s2m_static import link_static_sets

    image, mask = np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30), np.uint8)
    mask[5:15, 5:20] = 255
    for folder, stems in (("ecssd", ["0001", "0002"]), ("fss/cat", ["1"]), ("fss/dog", ["1", "2"])):
        (tmp_path / "src" / folder).mkdir(parents=True)
        for stem in stems:
            cv2.imwrite(str(tmp_path / "src" / folder / f"{stem}.jpg"), image)
            cv2.imwrite(str(tmp_path / "src" / folder / f"{stem}.png"), mask)
    assert link_static_sets(tmp_path / "src", tmp_path / "static") == {"fss": 3, "ecssd": 2}
    fss = FolderSource(tmp_path / "static" / "fss", split="all", mask_mode="binary", ignore_value=None)
    assert sorted(fss.names) == ["cat_1", "dog_1", "dog_2"]
    assert fss.get_sample(0).get_object_mask(fss.sample_object_ids(0)[0]).sum() == 150
    (tmp_path / "src" / "ecssd" / "0002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"0002.jpg: no mask 0002.png beside it"):
        link_static_sets(tmp_path / "src", tmp_path / "static")
