"""ONNX export and the exported backends (onnxruntime, openvino): same clicks and probabilities
(1e-4) as PyTorch on the protocol with zoom-in and flip; named dynamic inputs; the adapter travels in
the model; clear refusals; OpenVINO gives the NoBRS golden's clicks with one thread and with two.

The tests that need the exported model are slow (one export, shared by the module)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'iseg[onnx]')")
import onnx  # noqa: E402

from iseg.evaluation.protocol import ProtocolConfig, evaluate_sample  # noqa: E402
from iseg.export import ExportError, export_onnx  # noqa: E402
from iseg.export.__main__ import main as export_main  # noqa: E402
from iseg.inference.backends import network_backend  # noqa: E402
from iseg.inference.exported import OnnxRuntimeNetwork, OpenVinoNetwork  # noqa: E402
from iseg.inference.brs import FeatureBRS  # noqa: E402
from iseg.inference.flip import Flip  # noqa: E402
from iseg.inference.predict import predict  # noqa: E402
from iseg.inference.predictor import Predictor  # noqa: E402
from iseg.inference.zoom_in import ZoomIn  # noqa: E402
from iseg.interaction.prompts import Click  # noqa: E402
from iseg.models.checkpoints import load_model  # noqa: E402
from iseg.models.deeplab_model import DeeplabModel  # noqa: E402
from iseg.models.inputs import ClickInputs, NetInputs  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.test_predictor import GOLDEN, _checkpoint, check_golden_protocol, golden, golden_views  # noqa: F401

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="the openvino extra is not installed (pip install 'iseg[openvino]')"
)

PROTOCOL = ProtocolConfig(max_clicks=4, target_iou=1.01)


NET_CONFIG = {
    "_target_": "iseg.models.deeplab_model.DeeplabModel",
    "backbone": "resnet34",
    "deeplab_ch": 32,
    "aspp_dropout": 0.0,
    "with_prev_mask": True,
    "use_rgb_conv": False,
}


def small_deeplab_checkpoint(path: Path) -> DeeplabModel:
    """A small ITER-M DeepLab (ResNet-34, 32 channels) with seeded weights, saved as iseg's training
    checkpoint (``net.*`` weights and the network's Hydra config)."""
    torch.manual_seed(0)
    net = DeeplabModel(**{k: v for k, v in NET_CONFIG.items() if k != "_target_"}).eval()
    state = {f"net.{key}": value for key, value in net.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"net": NET_CONFIG}}, path)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeeplabModel, Path]:
    """The network and its ONNX model, written by the command line (one export for the module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("onnx")
    net = small_deeplab_checkpoint(folder / "deeplab.ckpt")
    assert export_main([f"checkpoint={folder / 'deeplab.ckpt'}", "format=onnx"]) == 0
    torch.set_num_threads(threads)
    return net, folder / "deeplab.onnx"


@pytest.fixture(scope="module")
def grabcut() -> list[tuple[np.ndarray, np.ndarray]]:
    with np.load(GOLDEN.with_suffix(".npz")) as data:
        return [(data[f"image/{name}"], data[f"gt/{name}"]) for name in ("37073.jpg", "memorial.jpg")]


def views() -> dict:
    return {"zoom_in": ZoomIn(target_size=160, min_crop_size=80), "flip": Flip()}


def run(predictor: Predictor, image: np.ndarray, gt: np.ndarray) -> tuple[list[Click], list[np.ndarray]]:
    predictor.set_image(image)
    maps: list[np.ndarray] = []
    add = predictor.add
    predictor.add = lambda prompt: maps.append(add(prompt)) or maps[-1]  # record every map
    result = evaluate_sample(predictor, gt, PROTOCOL)
    return result.clicks, maps


@pytest.mark.slow  # one export of a small DeepLab (~15 s of CPU), shared by the module
def test_the_graph_takes_the_adapters_inputs_by_name_with_dynamic_sizes(exported, one_thread) -> None:
    net, path = exported
    model = onnx.load(str(path))
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    assert shapes == {"image": ["batch", 4, "height", "width"], "points": ["batch", "points_1", 3]}
    assert [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [
        "batch", 1, "height", "width",
    ]
    metadata = {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata["iseg.inputs"]) == net.default_inputs().config()
    onnx_net = OnnxRuntimeNetwork(path)
    adapter = onnx_net.default_inputs()
    assert isinstance(adapter, ClickInputs) and adapter.prev_mask and adapter.net_clicks_limit is None
    # sizes and click counts other than the export's examples, odd ones included
    generator = torch.Generator().manual_seed(1)
    for height, width, clicks in ((37, 151, 1), (160, 240, 7)):
        image = torch.rand(2, 4, height, width, generator=generator)
        points = adapter.encode([[Click(5 * k % height, 9 * k % width, k % 3 != 1) for k in range(clicks)]] * 2, "cpu")["points"]
        with torch.no_grad():
            expected = torch.sigmoid(net(image, points)["instances"])
        got = torch.sigmoid(onnx_net(image=image, points=points)["instances"])
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_onnxruntime_gives_the_clicks_and_probabilities_of_pytorch_on_the_protocol(exported, grabcut, one_thread) -> None:
    net, path = exported
    with_torch = Predictor(net, views=views())
    with_onnx = Predictor(path, views=views(), backend="onnxruntime")
    assert isinstance(with_onnx.net, OnnxRuntimeNetwork)
    zoomed = 0
    for image, gt in grabcut:
        clicks, maps = run(with_torch, image, gt)
        onnx_clicks, onnx_maps = run(with_onnx, image, gt)
        assert onnx_clicks == clicks
        assert len({(c.y, c.x) for c in clicks}) == len(clicks) == PROTOCOL.max_clicks
        for k, (expected, got) in enumerate(zip(maps, onnx_maps)):
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0, err_msg=f"click {k + 1}")
        assert 0.0 < maps[-1].mean() < 1.0
        zoomed += with_onnx.views["zoom_in"].get_state() is not None
    assert zoomed  # the zoom-in view took part


@pytest.mark.slow
def test_from_checkpoint_and_undo_with_an_onnx_file(exported, grabcut, one_thread) -> None:
    _, path = exported
    predictor = Predictor.from_checkpoint(path, views=views())
    assert isinstance(predictor.net, OnnxRuntimeNetwork)
    image, _ = grabcut[0]
    predictor.set_image(image)
    first = predictor.add(Click(80, 120, True)).copy()
    predictor.add(Click(20, 30, False))
    np.testing.assert_array_equal(predictor.undo(), first)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [None, pytest.param("openvino", marks=needs_openvino)])
def test_predict_takes_the_onnx_file(backend: str | None, exported, grabcut, one_thread) -> None:
    net, path = exported
    image, _ = grabcut[0]
    clicks = [(80, 120, True), (20, 30, False)]
    expected = predict(image, clicks, net, return_probs=True)
    got = predict(image, clicks, path, return_probs=True, backend=backend)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_the_cli_names_bad_arguments(tmp_path: Path, capsys) -> None:
    assert export_main(["checkpoint=net.ckpt", "format=tflite"]) == 2
    assert "format='tflite' is not supported" in capsys.readouterr().err
    assert export_main([f"checkpoint={tmp_path / 'nope.pth'}"]) == 2
    assert "nope.pth does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert export_main([f"checkpoint={tmp_path / 'notes.txt'}"]) == 2
    assert "cannot be read as a torch checkpoint" in capsys.readouterr().err
    assert export_main(["checkpoint=x.pth", "opset=17"]) == 2
    assert "unknown argument 'opset=17'" in capsys.readouterr().err


@pytest.mark.slow
def test_refusals_are_clear(exported, tmp_path: Path) -> None:
    net, path = exported
    with pytest.raises(ValueError, match="FeatureBRS optimises through the network's gradients"):
        Predictor(path, refiner=FeatureBRS("C"), backend="onnxruntime")
    with pytest.raises(ValueError, match="runs on the CPU"):
        Predictor(path, backend="onnxruntime", device="cuda")
    assert isinstance(Predictor(path).net, OnnxRuntimeNetwork)  # no backend named: it follows the network
    with pytest.raises(TypeError, match="give backend='onnxruntime'"):
        Predictor(path, backend="torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        Predictor(net, backend="tensorrt")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.onnx: not an ONNX model"):
        OnnxRuntimeNetwork(tmp_path / "junk.onnx")

    class Unstorable(NetInputs):
        def __init__(self) -> None:
            super().__init__([])

    with pytest.raises(ExportError, match="Unstorable has no config"):
        export_onnx(net, inputs=Unstorable())


def small_evaluation(tmp_path: Path) -> tuple[dict, dict]:
    """A two-image folder set (48x64) and RITM's predictor config with a zoom-in that fits it."""
    from omegaconf import OmegaConf

    from iseg.data.eval import FolderDataset
    from iseg.evaluation.runner import compose_eval_config
    from tests.test_evaluate import make_folder_set

    folder = FolderDataset(make_folder_set(tmp_path / "set", num_images=2, shape=(48, 64)))
    config = OmegaConf.to_container(
        compose_eval_config(["predictor.views.zoom_in.target_size=64", "predictor.views.zoom_in.min_crop_size=32"]).predictor,
        resolve=True,
    )
    return {"folder": folder}, config


@pytest.mark.slow
def test_the_evaluation_runs_an_onnx_model_with_the_clicks_of_pytorch(exported, tmp_path: Path, one_thread) -> None:
    from iseg.evaluation.runner import evaluate_checkpoint

    net, path = exported
    sets, config = small_evaluation(tmp_path)
    assert config["backend"] is None  # follows the checkpoint
    protocol = ProtocolConfig(max_clicks=3, target_iou=1.01)
    runs = {
        "torch": (net, None),
        "onnx file": (path, None),
        "exported once": (net, "onnxruntime"),
    }
    evaluations = {
        name: evaluate_checkpoint(checkpoint, sets, {**config, "backend": backend}, protocol=protocol)[0]
        for name, (checkpoint, backend) in runs.items()
    }
    assert evaluations["onnx file"].predictor["backend"] == "onnxruntime"
    expected = evaluations["torch"].records
    assert len(expected) == 2
    for name in ("onnx file", "exported once"):
        records = evaluations[name].records
        assert [r.result.clicks for r in records] == [r.result.clicks for r in expected], name
        for got, want in zip(records, expected):
            np.testing.assert_allclose(got.result.ious, want.result.ious, atol=1e-3, err_msg=name)
    with pytest.raises(TypeError, match="give backend='onnxruntime'"):
        evaluate_checkpoint(path, sets, {**config, "backend": "torch"}, protocol=protocol)


# ---------------------------------------------------------------------------- backend='openvino'


@needs_openvino
@pytest.mark.slow  # one export of the HRNet18s stand-in (~1 min of CPU)
def test_openvino_gives_the_nobrs_goldens_clicks_with_one_thread_and_with_two(golden, tmp_path: Path) -> None:  # noqa: F811
    net = load_model(_checkpoint("v1_override", tmp_path), map_location="cpu")
    model = export_onnx(net)
    for threads in (1, 2):
        predictor = Predictor(OpenVinoNetwork(model, threads=threads), views=golden_views(golden), pred_thr=0.49)
        assert predictor.net.compiled.get_property("INFERENCE_NUM_THREADS") == threads
        assert str(predictor.net.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
        check_golden_protocol(predictor, golden, "v1_override")


@needs_openvino
@pytest.mark.slow
def test_openvino_gives_the_clicks_of_pytorch(exported, grabcut, one_thread) -> None:
    net, path = exported
    with_torch = Predictor(net, views=views())
    with_openvino = Predictor(path, views=views(), backend="openvino")
    assert isinstance(with_openvino.net, OpenVinoNetwork)
    for image, gt in grabcut:
        clicks, maps = run(with_torch, image, gt)
        openvino_clicks, openvino_maps = run(with_openvino, image, gt)
        assert openvino_clicks == clicks
        for k, (expected, got) in enumerate(zip(maps, openvino_maps)):
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0, err_msg=f"click {k + 1}")


@needs_openvino
@pytest.mark.slow
def test_outputs_are_the_callers_to_keep(exported, grabcut, one_thread) -> None:
    """OpenVINO reuses its output buffers: a kept result must not change on the next call."""
    _, path = exported
    network = OpenVinoNetwork(path)
    adapter = network.default_inputs()
    image = torch.rand(1, 4, 40, 56, generator=torch.Generator().manual_seed(0))
    points = adapter.encode([[Click(10, 20, True)]], "cpu")["points"]
    first = network(image=image, points=points)["instances"]
    kept = first.clone()
    network(image=torch.rand(1, 4, 40, 56), points=points)
    assert torch.equal(first, kept)


@needs_openvino
@pytest.mark.slow
def test_networks_move_between_backends(exported) -> None:
    _, path = exported
    cpu = torch.device("cpu")
    from_onnxruntime = network_backend(OnnxRuntimeNetwork(path), "openvino", cpu)
    assert isinstance(from_onnxruntime, OpenVinoNetwork) and from_onnxruntime.network_name.endswith(".DeeplabModel")
    assert isinstance(network_backend(from_onnxruntime, "onnxruntime", cpu), OnnxRuntimeNetwork)
    assert network_backend(from_onnxruntime, None, cpu) is from_onnxruntime  # no backend named: its own


@needs_openvino
@pytest.mark.slow
def test_an_exported_network_is_no_ablation_of_its_own_predictor(exported, caplog) -> None:
    """The stored name is the class's dotted path; the predictor files list class names."""
    from omegaconf import OmegaConf

    from iseg.evaluation.runner import check_predictor_networks

    _, path = exported
    with caplog.at_level("WARNING", logger="iseg.evaluation.runner"):
        check_predictor_networks(OmegaConf.create({"predictor_networks": ["HRNetModel", "DeeplabModel"]}), OpenVinoNetwork(path))
        check_predictor_networks(OmegaConf.create({"predictor_networks": ["FCFIHRNetModel"]}), OpenVinoNetwork(path))
    assert [record.getMessage().split(";")[0] for record in caplog.records] == ["the checkpoint holds a DeeplabModel"]


@needs_openvino
@pytest.mark.slow
def test_refusals_name_the_backend_and_the_file(exported, tmp_path: Path, monkeypatch) -> None:
    net, path = exported
    with pytest.raises(ValueError, match="backend='openvino' runs on the CPU"):
        Predictor(path, backend="openvino", device="cuda")
    with pytest.raises(ValueError, match="fold_batchnorm=true folds a PyTorch network; OpenVinoNetwork"):
        Predictor(path, backend="openvino", fold_batchnorm=True)
    with pytest.raises(TypeError, match="give backend='openvino'"):
        Predictor(OpenVinoNetwork(path), backend="torch")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.onnx: not an ONNX model openvino can load"):
        OpenVinoNetwork(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError, match="nope.onnx does not exist"):
        OpenVinoNetwork(tmp_path / "nope.onnx")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'iseg\[openvino\]'"):
        OpenVinoNetwork(path)


@needs_openvino
@pytest.mark.slow
def test_the_evaluation_runs_openvino_with_the_clicks_of_pytorch(exported, tmp_path: Path, one_thread) -> None:
    from iseg.evaluation.runner import evaluate_checkpoint

    net, path = exported
    sets, config = small_evaluation(tmp_path)
    protocol = ProtocolConfig(max_clicks=3, target_iou=1.01)
    # the PyTorch network exported once for the evaluation is covered with onnxruntime (same code)
    expected, got = (
        evaluate_checkpoint(checkpoint, sets, {**config, "backend": backend}, protocol=protocol)[0]
        for checkpoint, backend in ((net, None), (path, "openvino"))
    )
    assert got.predictor["backend"] == "openvino" and len(got.records) == 2
    assert [r.result.clicks for r in got.records] == [r.result.clicks for r in expected.records]
    for mine, want in zip(got.records, expected.records):
        np.testing.assert_allclose(mine.result.ious, want.result.ious, atol=1e-3)


@needs_openvino
@pytest.mark.slow
def test_predict_and_the_demo_run_openvino_compiled_once(exported, one_thread) -> None:
    from iseg.demo.config import DemoConfig
    from iseg.demo.loader import ModelLoader
    from iseg.inference.predict import load_network

    _, path = exported
    cached = load_network(path, "openvino")
    assert isinstance(cached, OpenVinoNetwork) and load_network(path, "openvino") is cached  # compiled once
    assert isinstance(load_network(path), OnnxRuntimeNetwork)  # the file's default backend, cached apart

    loader = ModelLoader(DemoConfig(checkpoint=str(path), backend="openvino"))
    loader.load()
    assert loader.state == "ready", loader.error
    assert loader.network_name == "DeeplabModel"
    assert loader.new_predictor().net is cached
    broken = ModelLoader(DemoConfig(checkpoint=str(path), backend="tensorrt"))
    broken.load()
    assert broken.state == "error" and "backend must be one of" in broken.error


# Two compiled models dropped in creation order, then a child process ends. Each OpenVINO CPU plugin
# puts a larger alternate signal stack on the thread that creates it and, when destroyed, restores
# the one it found: with a plugin per model, the second restored the first's, already unmapped, and
# the next Python signal handler (SIGCHLD here, installed by torch's DataLoader in a real process)
# killed the process with SIGSEGV. One Core per process keeps one plugin alive.
_SIGNAL_AFTER_DROPPED_MODELS = """
import gc, signal, subprocess, sys
signal.signal(signal.SIGCHLD, lambda *_: None)
from iseg.inference.exported import OpenVinoNetwork
first, second = OpenVinoNetwork(sys.argv[1]), OpenVinoNetwork(sys.argv[1])
del first
gc.collect()
del second
gc.collect()
subprocess.run([sys.executable, "-c", "pass"], check=True)
print("handled")
"""


@needs_openvino
@pytest.mark.slow
def test_dropped_openvino_models_leave_signal_handling_intact(exported) -> None:
    _, path = exported
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AFTER_DROPPED_MODELS, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and done.stdout.split() == ["handled"], (done.returncode, done.stderr[-2000:])
