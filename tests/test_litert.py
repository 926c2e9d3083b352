"""The LiteRT runtime: MobileNetV2 compiled from Keras, cached on disk, run without TensorFlow.

Compiling takes about 10 s: the session's cache (conftest's ``neardup_cache``) is compiled once,
and `recompiled` compiles once more, to replace a truncated file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, PHOTOS, photo
from neardup.indexer.embed import CnnEmbedder, l2_normalise, resize_square
from neardup.indexer.litert import (
    CompileError,
    LiteRTNetwork,
    NetworkSpec,
    cache_dir,
    load_network,
)

# Embeds tests/data/coffee.jpg with the default runtime, saves the vector to argv[1] (.npy)
# and the names of the TensorFlow modules this process imported to argv[2].
EMBED_COFFEE = f"""if True:
    import sys
    import numpy as np
    from PIL import Image
    from neardup.indexer.embed import CnnEmbedder
    image = np.asarray(Image.open({str(DATA / "coffee.jpg")!r}).convert("RGB"))
    np.save(sys.argv[1], CnnEmbedder().embed([image])[0])
    with open(sys.argv[2], "w") as file:
        file.write(" ".join(sorted({{"tensorflow", "keras"}} & set(sys.modules))))
"""


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    """The five test photos squashed to (5, 224, 224, 3) uint8."""
    return np.stack([resize_square(photo(name), 224) for name in PHOTOS])


@pytest.fixture(scope="module")
def keras_features(batch: np.ndarray) -> np.ndarray:
    """(5, 1280) float32 pooled features of `batch` computed by Keras, the reference."""
    return CnnEmbedder(runtime="keras").embed_batch(batch)


@pytest.fixture(scope="module")
def warm_cache(neardup_cache: Path) -> Path:
    """The session cache's compiled GeM network (compiled now if no test needed it yet)."""
    CnnEmbedder(runtime="litert").embed_batch(np.zeros((1, 224, 224, 3), np.uint8))
    (path,) = neardup_cache.glob("mobilenet_v2-gem-*.tflite")
    return path


def embed_coffee_in_child(cache: Path, out: Path) -> subprocess.CompletedProcess:
    """Run `EMBED_COFFEE` with ``cache`` as NEARDUP_CACHE_DIR and TensorFlow's log level unset
    (so quietness cannot come from the caller's environment); files go into ``out``."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["NEARDUP_CACHE_DIR"] = str(cache)
    command = [sys.executable, "-c", EMBED_COFFEE, str(out / "vector.npy"), str(out / "tf.txt")]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_litert_equals_keras_on_real_photos(batch: np.ndarray, keras_features: np.ndarray):
    embedder = CnnEmbedder(runtime="litert")

    features = embedder.embed_batch(batch)
    vectors = embedder.embed([photo(name) for name in PHOTOS])

    assert features.shape == (5, 1280) and features.dtype == np.float32
    np.testing.assert_allclose(features, keras_features, rtol=0, atol=1e-4)  # measured 1.1e-5
    np.testing.assert_allclose(vectors, l2_normalise(keras_features), rtol=0, atol=1e-4)


def test_batch_size_changes_resize_the_interpreter(batch: np.ndarray, keras_features):
    embedder = CnnEmbedder(runtime="litert")

    parts = [embedder.embed_batch(batch[:2]), embedder.embed_batch(batch[2:3])]
    parts.append(embedder.embed_batch(batch[3:]))

    np.testing.assert_allclose(np.concatenate(parts), keras_features, rtol=0, atol=1e-4)


def test_warm_cache_embeds_quietly_without_tensorflow(
    warm_cache: Path, keras_features: np.ndarray, tmp_path: Path
):
    result = embed_coffee_in_child(warm_cache.parent, tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tf.txt").read_text() == ""  # neither tensorflow nor keras imported
    assert result.stdout == "" and result.stderr == ""  # no XNNPACK notice either
    vector = np.load(tmp_path / "vector.npy")
    np.testing.assert_allclose(vector, l2_normalise(keras_features)[0], rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def recompiled(warm_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """A child process embedding coffee.jpg with a cache holding the first half of the compiled
    network's file. Returns (its CompletedProcess, the cache, the folder of its outputs)."""
    cache, out = tmp_path_factory.mktemp("corrupt-cache"), tmp_path_factory.mktemp("out")
    data = warm_cache.read_bytes()
    (cache / warm_cache.name).write_bytes(data[: len(data) // 2])
    return embed_coffee_in_child(cache, out), cache, out


def test_compiling_prints_nothing(recompiled):
    result, _, _ = recompiled

    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_truncated_cache_file_is_compiled_again(recompiled, warm_cache, keras_features):
    result, cache, out = recompiled

    assert result.returncode == 0, result.stderr
    assert [p.name for p in cache.iterdir()] == [warm_cache.name]  # no temporary file left
    assert (cache / warm_cache.name).stat().st_size > warm_cache.stat().st_size * 0.99
    LiteRTNetwork(cache / warm_cache.name)  # loads now
    vector = np.load(out / "vector.npy")
    np.testing.assert_allclose(vector, l2_normalise(keras_features)[0], rtol=0, atol=1e-4)
    assert (out / "tf.txt").read_text() == ""  # TensorFlow ran in a grandchild only


def test_cache_file_name_changes_with_everything_that_shapes_the_output():
    spec = NetworkSpec(model="mobilenet/1", pooling="gem")
    variants = [
        replace(spec, pooling="mean"),
        replace(spec, input_size=256),
        replace(spec, gem_p=4.0),
        replace(spec, model="mobilenet/2"),
    ]

    paths = [spec.path(), *(variant.path() for variant in variants)]

    assert len(set(paths)) == len(paths)
    assert spec.path() == NetworkSpec(model="mobilenet/1", pooling="gem").path()
    assert all(path.parent == cache_dir() for path in paths)


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("NEARDUP_CACHE_DIR", str(tmp_path / "chosen"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "chosen"

    monkeypatch.delenv("NEARDUP_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "neardup"

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec says: ignore it
    assert cache_dir() == tmp_path / "home" / ".cache" / "neardup"


def test_failed_compile_raises_with_the_converter_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("NEARDUP_CACHE_DIR", str(tmp_path))

    with pytest.raises(CompileError, match="pooling must be 'mean' or 'gem', got 'max'"):
        load_network(NetworkSpec(model="mobilenet/1", pooling="max"))
    assert list(tmp_path.iterdir()) == []


def test_rejects_unknown_runtime():
    with pytest.raises(ValueError, match="runtime must be"):
        CnnEmbedder(runtime="onnx")  # type: ignore[arg-type]


def test_an_embedder_knows_whether_its_first_use_compiles(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, warm_cache
):
    assert not CnnEmbedder(runtime="keras").compiles_on_first_use
    embedder = CnnEmbedder(runtime="litert")
    assert not embedder.compiles_on_first_use  # the session's cache holds the network already
    monkeypatch.setenv("NEARDUP_CACHE_DIR", str(tmp_path / "empty"))
    assert CnnEmbedder(runtime="litert").compiles_on_first_use


def test_an_unwritable_cache_falls_back_to_keras_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keras_features: np.ndarray
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NEARDUP_CACHE_DIR", str(blocker / "neardup"))  # mkdir fails, even as root
    embedder = CnnEmbedder(runtime="auto")

    with pytest.warns(RuntimeWarning, match="NEARDUP_CACHE_DIR"):
        vectors = embedder.embed([photo(name) for name in PHOTOS])

    assert embedder.runtime == "keras"
    np.testing.assert_allclose(vectors, l2_normalise(keras_features), rtol=0, atol=1e-4)
    with pytest.raises(OSError):  # asked for LiteRT explicitly: no silent change of runtime
        CnnEmbedder(runtime="litert").embed([photo("coffee")])


def test_a_process_loads_a_network_once_per_thread_count(warm_cache):
    spec = CnnEmbedder()._litert_spec()
    one = load_network(spec, threads=1)
    assert load_network(spec, threads=1) is one  # a worker's embedder, unpickled per task
    assert load_network(spec, threads=2) is not one


def test_no_worker_copy_when_the_compiled_network_cannot_be_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NEARDUP_CACHE_DIR", str(blocker / "neardup"))
    assert CnnEmbedder(runtime="auto").in_worker() is None  # Keras, in the indexing process
