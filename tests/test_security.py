"""Untrusted files never run code: hostile pickles, checkpoints, ``.npy``/``.npz`` object arrays, YAML python tags.

Every hostile file here is real: its payload creates a marker file, and each test first shows that the payload does
run under the unsafe reader (``pickle.load``, ``torch.load(weights_only=False)``, ``allow_pickle=True``,
``yaml.unsafe_load``). Then, through the Python API and the ``mmbench`` CLI, the marker must never appear, the
refusal must be one line naming the file and the refused global, and the CLI must exit 2.
"""

from __future__ import annotations

import http.server
import io
import os
import pickle
import pickletools
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from mmbench.cli import MMBenchCLI, cli_main, main
from mmbench.data.avmnist import AVMNISTDataModule, make_multibench_fixture
from mmbench.data.base import MultimodalDataModule
from mmbench.data.brats import CaseVolume, VolumeCache, find_case
from mmbench.data.features import FeaturesDataModule, make_mosi_fixture
from mmbench.data.safe_pickle import ALLOWED_GLOBALS, _python3_name, load_pickle
from mmbench.errors import DataIntegrityError
from mmbench.methods.base import MissingModalityMethod
from mmbench.safe_io import FORCE_NO_WEIGHTS_ONLY, FORCE_WEIGHTS_ONLY, UnsafeFileError, load_npy, weights_only_loads

REPO = Path(__file__).resolve().parents[1]
FAST = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
SYNTH = ["--data=SyntheticDataModule", "--data.num_samples=[24,8,9]", "--data.batch_size=8", "--model=mean_fill"]
MOSI_FIT = [
    "fit",
    "--config",
    str(REPO / "experiments/trainer/default.yaml"),
    "--config",
    str(REPO / "experiments/data/mosi_pickle.yaml"),
    "--config",
    str(REPO / "experiments/methods/late_fusion.yaml"),
    "--trainer.fast_dev_run=true",
    "--trainer.accelerator=cpu",
]


# --------------------------------------------------------------------------------------------------- payloads
class SystemPayload:
    """Unpickling calls ``os.system("touch <marker>")`` (pickled as ``posix.system`` on Linux)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class ExecPayload(SystemPayload):
    """Unpickling calls ``builtins.exec`` on code that creates the marker."""

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


class RunPayload(SystemPayload):
    """Unpickling calls ``subprocess.run(["touch", marker])``."""

    def __reduce__(self):
        return (subprocess.run, (["touch", str(self.marker)],))


def _hostile_pickles(marker: Path) -> dict[str, tuple[bytes, str]]:
    """Name → (pickle bytes, the global the refusal must name)."""
    system = os.system.__module__ + ".system"  # posix.system
    evil = SystemPayload(marker)
    layout = {s: {"text": evil, "audio": np.zeros((2, 3)), "labels": np.zeros(2)} for s in ("train", "valid", "test")}
    code = f"__import__('os').system('touch {marker}')"
    return {
        **{f"reduce-protocol{p}": (pickle.dumps(evil, protocol=p), system) for p in range(6)},
        "exec": (pickle.dumps(ExecPayload(marker)), "builtins.exec"),
        "subprocess": (pickle.dumps(RunPayload(marker)), "subprocess.run"),
        "inside-mosi-layout": (pickle.dumps(layout, protocol=2), system),
        "inside-object-array": (pickle.dumps({"train": {"text": np.array([1, evil], dtype=object)}}), system),
        # hand-written opcodes: protocol 0 INST, and a Python 2 spelling that pickle maps to builtins.eval
        "protocol0-inst": (f"(S'touch {marker}'\nios\nsystem\n.".encode(), "os.system"),
        "python2-builtin": (f'c__builtin__\neval\n(S"{code}"\ntR.'.encode(), "__builtin__.eval"),
    }


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def _one_error_line(err: str, *needles: str) -> str:
    """The CLI's stderr holds exactly one error line, no traceback, and it contains every needle."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1, err
    assert lines[0].startswith("mmbench: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _main_exit(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    return capsys.readouterr().err


# --------------------------------------------------------------------------------------------- feature pickles
@pytest.mark.parametrize("name", list(_hostile_pickles(Path("m"))))
def test_hostile_pickle_is_refused_and_nothing_runs(name, tmp_path, marker):
    payload, refused = _hostile_pickles(marker)[name]
    pickle.loads(payload)  # control: the unsafe reader really runs the payload
    assert marker.exists(), "the payload is not hostile"
    marker.unlink()
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafeFileError, match=rf"evil\.pkl: refused to unpickle the global {refused}:") as exc:
        load_pickle(path)
    assert "\n" not in str(exc.value)
    with pytest.raises(UnsafeFileError, match=rf"global {refused}:"):
        FeaturesDataModule(path=str(path))
    assert not marker.exists()


def test_hostile_pickle_through_the_cli_exits_2_with_one_line(tmp_cwd, marker, capsys):
    path = tmp_cwd / "evil.pkl"
    path.write_bytes(pickle.dumps({"train": {"text": SystemPayload(marker)}}))
    err = _main_exit([*MOSI_FIT, f"--data.init_args.path={path}"], capsys)
    _one_error_line(err, "evil.pkl: refused to unpickle the global posix.system")
    with pytest.raises(UnsafeFileError, match=r"evil\.pkl: refused to unpickle the global posix\.system"):
        cli_main([*MOSI_FIT, f"--data.init_args.path={path}"])  # the Python API raises the same error
    assert not marker.exists()


def test_hostile_pickle_through_the_console_script(tmp_path, marker):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(SystemPayload(marker), protocol=2))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "mmbench", *MOSI_FIT, f"--data.init_args.path={path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    _one_error_line(out.stderr, f"{path}: refused to unpickle the global posix.system")
    assert not marker.exists()


def test_refusals_of_allowed_module_other_name_codecs_and_odd_names(tmp_path):
    cases = {
        b"cnumpy\nload\n(S'x.npy'\ntR.": "the global numpy.load",  # an allowed module does not allow other names
        b"cnumpy.testing\nassert_\n(I1\ntR.": "the global numpy.testing.assert_",
        b"c_codecs\nencode\n(S'x'\nS'zlib_codec'\ntR.": "the global _codecs.encode with codec 'zlib_codec'",
        b"ccopy_reg\n_reconstructor\n.": "the global copy_reg._reconstructor",  # Python 2 name, mapped, refused
        b"Pfoo\n.": "a persistent id",
    }
    for data, refused in cases.items():
        path = tmp_path / "odd.pkl"
        path.write_bytes(data)
        with pytest.raises(UnsafeFileError, match=rf"odd\.pkl: refused to unpickle {refused}"):
            load_pickle(path)

    # protocol 5 out-of-band buffers (never in files): refused as unreadable, no buffers are handed in
    (tmp_path / "oob.pkl").write_bytes(pickle.dumps(np.arange(3.0), protocol=5, buffer_callback=lambda b: False))
    with pytest.raises(DataIntegrityError, match=r"oob\.pkl is not a readable pickle: .*out-of-band data"):
        load_pickle(tmp_path / "oob.pkl")

    # a protocol 4 name with a newline and a terminal escape: the message stays one printable line
    def unicode(text: str) -> bytes:
        raw = text.encode()
        return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw

    stack_global = (
        pickle.PROTO + b"\x04" + unicode("os") + unicode("sys\ntem\x1b[2J") + pickle.STACK_GLOBAL + pickle.STOP
    )
    (tmp_path / "odd.pkl").write_bytes(stack_global)
    with pytest.raises(UnsafeFileError) as exc:
        load_pickle(tmp_path / "odd.pkl")
    assert str(exc.value).isprintable() and r"os.sys\ntem\x1b[2J" in str(exc.value)


# ----------------------------------------------------------------------------- legitimate pickles still load
NUMPY_OBJECTS = {
    "float32": np.arange(6, dtype=np.float32).reshape(2, 3),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "strided": np.arange(10.0)[::2],
    "big-endian": np.arange(3, dtype=">f4"),
    "int64": np.arange(4),
    "bool": np.array([True, False]),
    "complex": np.array([1 + 2j]),
    "unicode": np.array(["ab", "cé"]),
    "bytes-dtype": np.array([b"ab"]),
    "object-of-str": np.array(["raw text", "more"], dtype=object),
    "structured": np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]),
    "datetime": np.array(["2020-01-01"], dtype="M8[D]"),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "0-d": np.array(1.5),
    "scalar": np.float32(2.5),
    "containers": OrderedDict(a={1, 2}, b=frozenset([3]), c=bytearray(b"x"), d=b"y", e=b"", f=1j, g=(1, [2])),
}


def _globals_in(data: bytes) -> set[str]:
    """Every ``module.name`` a (benign, own) pickle asks for, in Python 3 spelling: record ``find_class`` calls."""
    found: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add(_python3_name(module, name))
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return found


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("kind", list(NUMPY_OBJECTS))
def test_every_global_numpy_pickles_to_is_allowed_and_round_trips(kind, protocol, tmp_path):
    obj = NUMPY_OBJECTS[kind]
    data = pickle.dumps(obj, protocol=protocol)
    assert not any(op.name in ("NEXT_BUFFER", "READONLY_BUFFER") for op, _, _ in pickletools.genops(data))
    assert _globals_in(data) <= set(ALLOWED_GLOBALS)
    path = tmp_path / "ok.pkl"
    path.write_bytes(data)
    loaded, reference = load_pickle(path), pickle.loads(data)  # reference: the stock unpickler, own benign data
    assert type(loaded) is type(reference)
    if isinstance(obj, np.ndarray | np.generic):
        assert loaded.dtype == reference.dtype  # (numpy itself normalises byte order below protocol 5)
        np.testing.assert_array_equal(loaded, obj)
    else:
        assert loaded == obj


def test_numpy_1x_spellings_load_under_numpy_2(tmp_path):
    """``numpy.core.*`` (numpy 1.x files) and ``numpy._core.*`` (numpy 2.x files) both load."""
    arr = np.arange(5, dtype=np.float32)
    for protocol in (2, 4, 5):
        data = pickle.dumps({"x": arr, "s": np.float32(3)}, protocol=protocol)
        old = data.replace(b"numpy._core", b"numpy.core")  # protocol 2: GLOBAL 'module\nname\n' lines
        if protocol >= 4:  # STACK_GLOBAL strings carry their length; re-frame after the edit
            old = data.replace(b"\x8c\x13numpy._core.numeric", b"\x8c\x12numpy.core.numeric").replace(
                b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray"
            )
            old = pickletools.optimize(old)
        assert b"numpy.core" in old and b"numpy._core" not in old
        path = tmp_path / f"np1-{protocol}.pkl"
        path.write_bytes(old)
        loaded = load_pickle(path)
        np.testing.assert_array_equal(loaded["x"], arr)
        assert loaded["s"] == np.float32(3)


def test_real_python2_numpy_pickle_loads():
    """numpy's own Python 2 test pickle (protocol 2, ``numpy.core.multiarray``, latin1 str data)."""
    import numpy

    path = Path(numpy.__file__).parent / "_core" / "tests" / "data" / "astype_copy.pkl"
    if not path.is_file():
        pytest.skip("numpy was installed without its test data")
    with open(path, "rb") as f:
        expected = pickle.load(f, encoding="latin1")
    loaded = load_pickle(path)
    assert loaded.dtype == np.float64 and loaded.shape == expected.shape
    np.testing.assert_array_equal(loaded, expected)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_multibench_layout_loads_at_every_protocol(protocol, tmp_path):
    ref = make_mosi_fixture(tmp_path / "mosi.pkl", sizes=(30, 10, 10), seq_len=3)
    with open(ref, "rb") as f:
        data = pickle.load(f)  # the test's own file
    path = tmp_path / f"mosi-{protocol}.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    dm, expected = FeaturesDataModule(path=str(path)), FeaturesDataModule(path=str(ref))
    assert dm.input_shapes == expected.input_shapes and dm.split_hash == expected.split_hash
    dm.setup("fit")
    expected.setup("fit")
    torch.testing.assert_close(dm._dataset("train").inputs["audio"], expected._dataset("train").inputs["audio"])


# ------------------------------------------------------------------------------------------------- checkpoints
UL4M4 = ["--model=ul4m4", "--model.ae_epochs=1", "--model.num_clusters=2"]


def _fit_ckpt(root: Path, model: list[str]) -> Path:
    cwd = Path.cwd()
    os.chdir(root)
    try:
        cli = cli_main(["fit", *SYNTH, *model, *FAST, "--test_after_fit=false"])
    finally:
        os.chdir(cwd)
    (ckpt,) = (root / cli.trainer.log_dir / "checkpoints").glob("*.ckpt")
    return ckpt


@pytest.fixture(scope="module")
def real_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real mean-fill checkpoint (its fill means are buffers), from a 1-epoch fit on synthetic data."""
    return _fit_ckpt(tmp_path_factory.mktemp("ckpt"), [])


def _evil_ckpt(real: Path, path: Path, marker: Path, where: str) -> Path:
    ckpt = torch.load(real, weights_only=True)
    if where == "hparams":
        ckpt["hyper_parameters"]["hook"] = SystemPayload(marker)
    else:  # a pickled callable next to the weights
        ckpt["state_dict"]["fill"] = SystemPayload(marker)
    torch.save(ckpt, path)
    torch.load(path, weights_only=False)  # control: the unsafe loader runs the payload
    assert marker.exists(), "the payload is not hostile"
    marker.unlink()
    return path


@pytest.mark.parametrize("where", ["hparams", "state_dict"])
@pytest.mark.parametrize(
    "command", [["test"], ["fit"], ["test", "--weights_only=false"]], ids=["test", "resume", "test-weights_only=false"]
)
def test_hostile_checkpoint_refused_by_test_and_resume(command, where, real_ckpt, tmp_cwd, marker, capsys, monkeypatch):
    path = _evil_ckpt(real_ckpt, tmp_cwd / "evil.ckpt", marker, where)
    monkeypatch.setenv(FORCE_NO_WEIGHTS_ONLY, "1")  # the environment asks torch for unsafe loads: still refused
    err = _main_exit([*command, *SYNTH, *FAST, f"--ckpt_path={path}"], capsys)
    _one_error_line(err, f"{path}: refused to load checkpoint: it asks for the global posix.system")
    if command == ["test"]:  # the Python API raises the same error
        with pytest.raises(UnsafeFileError, match=r"refused to load checkpoint: it asks for the global posix\.system"):
            cli_main([*command, *SYNTH, *FAST, f"--ckpt_path={path}"])
    assert not marker.exists()
    assert os.environ[FORCE_NO_WEIGHTS_ONLY] == "1" and FORCE_WEIGHTS_ONLY not in os.environ  # restored


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_remote_checkpoint_is_loaded_weights_only(real_ckpt, tmp_cwd, marker, capsys, monkeypatch):
    """Lightning loads ``http(s)://`` checkpoints with ``weights_only=False`` by default; mmbench does not."""
    from lightning.fabric.utilities.cloud_io import _load

    served = tmp_cwd / "served"
    served.mkdir()
    _evil_ckpt(real_ckpt, served / "evil.ckpt", marker, "hparams")
    (served / "control.ckpt").write_bytes((served / "evil.ckpt").read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_cwd / "torch_home"))  # where torch.hub stores the download
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        lambda *a: _Quiet(*a, directory=str(served)),  # loopback only
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        _load(f"{url}/control.ckpt")  # control: Lightning's own loader runs the payload of a remote checkpoint
        assert marker.exists()
        marker.unlink()
        err = _main_exit(["test", *SYNTH, *FAST, f"--ckpt_path={url}/evil.ckpt"], capsys)
    finally:
        server.shutdown()
    _one_error_line(err, "evil.ckpt: remote checkpoints are not read")
    assert not marker.exists()


def test_weights_only_loads_scope(real_ckpt, tmp_path, marker, monkeypatch):
    path = _evil_ckpt(real_ckpt, tmp_path / "evil.ckpt", marker, "state_dict")
    monkeypatch.delenv(FORCE_WEIGHTS_ONLY, raising=False)
    monkeypatch.setenv(FORCE_NO_WEIGHTS_ONLY, "yes")

    def guarded_unsafe_load() -> None:
        with weights_only_loads():
            assert os.environ[FORCE_WEIGHTS_ONLY] == "1" and FORCE_NO_WEIGHTS_ONLY not in os.environ
            torch.load(path, weights_only=False)  # an explicit False is overridden

    with pytest.raises(UnsafeFileError, match=rf"^{path}: refused to load checkpoint: .*global posix\.system"):
        guarded_unsafe_load()
    assert not marker.exists()
    assert FORCE_WEIGHTS_ONLY not in os.environ and os.environ[FORCE_NO_WEIGHTS_ONLY] == "yes"


@pytest.mark.parametrize("method", ["mean_fill", "ul4m4"])
def test_real_checkpoint_loads_for_test_and_resume(method, real_ckpt, tmp_path_factory, tmp_cwd):
    """Real checkpoints, buffers included (mean-fill means, UL4M4's frozen encoders, imputer and ``fitted``)."""
    model = UL4M4 if method == "ul4m4" else []
    ckpt = _fit_ckpt(tmp_path_factory.mktemp("ul4m4"), model) if model else real_ckpt
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    cli = cli_main(["test", *SYNTH, *model, *FAST, f"--ckpt_path={ckpt}"])
    state = cli.model.state_dict()
    buffers = {name for name, _ in cli.model.named_buffers()}
    assert ("fitted" in buffers and bool(state["fitted"])) if model else int(state["mean_count"].sum()) > 0
    assert state.keys() == saved.keys()
    for key, value in saved.items():
        torch.testing.assert_close(state[key], value, msg=key)
    assert (Path(cli.trainer.log_dir) / "results.csv").is_file()
    resumed = cli_main(["fit", *SYNTH, *model, *FAST, "--trainer.max_epochs=2", f"--ckpt_path={ckpt}"])
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 6  # 3 steps restored + 3 run


# ---------------------------------------------------------------------------------------- .npz / .npy objects
def test_npz_object_array_refused(tmp_cwd, marker, capsys):
    path = tmp_cwd / "obj.npz"
    np.savez(path, text=np.array([SystemPayload(marker)], dtype=object), labels=np.zeros(1))
    np.load(path, allow_pickle=True)["text"]  # control
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeFileError, match=r"obj\.npz\['text'\] is an object array .* refuses to unpickle"):
        FeaturesDataModule(path=str(path))
    err = _main_exit([*MOSI_FIT, f"--data.init_args.path={path}"], capsys)
    _one_error_line(err, "obj.npz['text'] is an object array")
    assert not marker.exists()


def test_npy_object_array_and_raw_pickle_refused(tmp_path, marker):
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([SystemPayload(marker)], dtype=object), allow_pickle=True)
    np.load(obj, allow_pickle=True)  # control
    assert marker.exists()
    marker.unlink()
    raw = tmp_path / "raw.npy"  # a bare pickle under a .npy name
    raw.write_bytes(pickle.dumps(SystemPayload(marker)))
    for path in (obj, raw):
        for mmap in (None, "r"):
            with pytest.raises(
                UnsafeFileError, match=rf"{path.name} is not a readable numeric \.npy array: it holds Python objects"
            ):
                load_npy(path, mmap_mode=mmap)
    assert not marker.exists()
    np.save(tmp_path / "ok.npy", np.arange(3.0))
    np.testing.assert_array_equal(load_npy(tmp_path / "ok.npy", mmap_mode="r"), np.arange(3.0))


def test_avmnist_multibench_object_labels_refused(tmp_cwd, marker, capsys):
    root = make_multibench_fixture(tmp_cwd / "avmnist", n_train=30, n_test=10)
    labels = root / "train_labels.npy"
    np.save(labels, np.array([SystemPayload(marker)] * 30, dtype=object), allow_pickle=True)
    with pytest.raises(
        UnsafeFileError, match=r"train_labels\.npy is not a readable numeric \.npy array: it holds Python objects"
    ):
        AVMNISTDataModule(variant="multibench", root=str(root), val_size=5)
    err = _main_exit(
        [
            "fit",
            "--config",
            str(REPO / "experiments/data/avmnist_multibench.yaml"),
            "--config",
            str(REPO / "experiments/methods/late_fusion.yaml"),
            f"--data.init_args.root={root}",
            "--data.init_args.val_size=5",
            "--trainer.fast_dev_run=true",
        ],
        capsys,
    )
    _one_error_line(err, "train_labels.npy is not a readable numeric .npy array: it holds Python objects")
    assert not marker.exists()


def _write_brats_case(root: Path) -> Path:
    case = root / "BraTS2021_00001"
    case.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("flair", "t1", "t1ce", "t2"):
        vol = np.zeros((8, 8, 8), np.float32)
        vol[2:6, 2:6, 2:6] = 100 + rng.normal(size=(4, 4, 4))
        nib.save(nib.Nifti1Image(vol, np.eye(4)), case / f"{case.name}_{name}.nii.gz")
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[3:5, 3:5, 3:5] = 4
    nib.save(nib.Nifti1Image(seg, np.eye(4)), case / f"{case.name}_seg.nii.gz")
    return case


def test_brats_cache_cannot_hold_objects(tmp_path, marker):
    case = find_case(_write_brats_case(tmp_path / "data"))
    cache = VolumeCache(tmp_path / "cache")
    good = cache.load(case)
    entry = tmp_path / "cache" / case.case_id / cache.key(case)
    np.save(entry / "image.npy", np.array([SystemPayload(marker)], dtype=object), allow_pickle=True)  # tampered
    with pytest.raises(
        UnsafeFileError, match=r"image\.npy is not a readable numeric \.npy array: it holds Python objects"
    ):
        cache.load(case)
    assert not marker.exists()
    bad = CaseVolume(good.case_id, np.array([1], dtype=object), None, good.affine, good.bbox, good.source_shape)
    with pytest.raises(ValueError, match="allow_pickle=False"):  # the writer refuses objects too
        VolumeCache._write(tmp_path / "cache" / "x" / "entry", bad)


# ---------------------------------------------------------------------------------------------------- YAML
def _evil_yaml(path: Path, marker: Path, body: str) -> Path:
    path.write_text(body.format(tag=f'!!python/object/apply:os.system ["touch {marker}"]'))
    yaml.unsafe_load(path.read_text())  # control
    assert marker.exists(), "the payload is not hostile"
    marker.unlink()
    return path


def test_yaml_config_with_python_tag_refused(tmp_cwd, marker, capsys):
    path = _evil_yaml(tmp_cwd / "evil.yaml", marker, "trainer:\n  max_epochs: {tag}\n")
    err = _main_exit(["fit", "--config", str(path)], capsys)
    _one_error_line(err, "config file", "evil.yaml is not valid YAML", "python/object/apply:os.system")
    assert not marker.exists()
    # jsonargparse's own --config loader (the CLI class directly, without mmbench's pre-check) refuses it too
    with pytest.raises(SystemExit) as exc:
        MMBenchCLI(
            MissingModalityMethod,
            MultimodalDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=["fit", "--config", str(path)],
            run=False,
        )
    assert exc.value.code == 2 and "could not determine a constructor" in capsys.readouterr().err
    assert not marker.exists()


def test_yaml_sub_config_and_sweep_spec_with_python_tag_refused(tmp_cwd, marker, capsys):
    sub = _evil_yaml(tmp_cwd / "sub.yaml", marker, "class_path: {tag}\n")
    err = _main_exit(
        ["fit", "--config", str(REPO / "experiments/demo.yaml"), f"--data.init_args.missingness={sub}"], capsys
    )
    assert "data.missingness" in err and "sub.yaml" in err  # refused by the safe loader, named in one line
    spec = _evil_yaml(tmp_cwd / "spec.yaml", marker, "name: {tag}\n")
    err = _main_exit(["sweep", "-c", str(spec)], capsys)
    assert "spec.yaml" in err
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------------ W&B
def test_wandb_fragment_builds_an_offline_logger_and_default_has_none(tmp_cwd):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    base = ["--config", str(REPO / "experiments/demo.yaml")]
    default = cli_main(base, run=False)
    assert [type(lg) for lg in default.trainer.loggers] == [CSVLogger]  # no W&B unless a config adds it
    cli = cli_main([*base, "--config", str(REPO / "experiments/trainer/wandb.yaml")], run=False)
    (wb,) = [lg for lg in cli.trainer.loggers if isinstance(lg, WandbLogger)]
    assert wb._offline is True and wb._log_model is False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wandb_fragment_stays_offline_even_if_the_environment_says_online(tmp_cwd, monkeypatch):
    """``offline: true`` makes Lightning set ``WANDB_MODE=dryrun`` when the run starts, over the environment."""
    import ipaddress
    import socket

    import wandb

    wandb.teardown()
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_DIR", str(tmp_cwd))
    contacted = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None:
            try:
                if not ipaddress.ip_address(host).is_loopback:
                    contacted.append(address)
            except ValueError:  # a host name: resolving it would already be network use
                contacted.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    cli = cli_main(
        ["--config", str(REPO / "experiments/demo.yaml"), "--config", str(REPO / "experiments/trainer/wandb.yaml")],
        run=False,
    )
    (wb,) = [lg for lg in cli.trainer.loggers if type(lg).__name__ == "WandbLogger"]
    run = wb.experiment
    try:
        assert run.offline and run.settings.mode in ("offline", "dryrun")
        assert os.environ["WANDB_MODE"] == "dryrun"
    finally:
        wandb.finish()
    assert not contacted, f"network contacted: {contacted}"
