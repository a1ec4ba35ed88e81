"""The contextual Prisoner's Dilemma (envs/games/) and its image loaders."""

from __future__ import annotations

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.games.images import IDX_IMAGES, IDX_LABELS, load_digits, load_idx

# (label, A, B) -> (reward A, reward B), from the paper's rules
CASES = {
    (2, 0, 0): (5, 5),
    (3, 0, 0): (4, 4),
    (2, 0, 1): (-1, 5),
    (3, 0, 1): (-2, 5),
    (2, 1, 0): (5, -1),
    (3, 1, 0): (5, -2),
    (2, 1, 1): (0, 0),
    (3, 1, 1): (0, 0),
}


def write_idx(path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_files(tmp_path):
    """A 20-image MNIST-format pair (28 x 28, two of every digit)."""
    rng = np.random.default_rng(0)
    images, labels = tmp_path / "images-idx3-ubyte.gz", tmp_path / "labels-idx1-ubyte"
    write_idx(images, rng.integers(0, 256, (20, 28, 28)), IDX_IMAGES)
    write_idx(labels, np.arange(20) % 10, IDX_LABELS)
    return images, labels


def test_payoffs_follow_the_papers_rules():
    env = envs.make("games/contextual_pd")
    state, _ = env.reset(jax.random.PRNGKey(0))
    for (label, a, b), want in CASES.items():
        s = state.replace(label=jnp.array(label))
        _, ts = env.step(jax.random.PRNGKey(1), s, jnp.array([a, b]))
        np.testing.assert_array_equal(ts.reward, want)
        assert bool(ts.terminated) and float(ts.info["joint_reward"]) == sum(want)
        assert float(ts.info["cooperation"]) == float(a == b == 0)
        np.testing.assert_array_equal(ts.info["task/choice"], [a, b])


def test_rounds_draw_uniform_labels_and_an_image_of_that_label():
    env = envs.make("games/contextual_pd")
    images, labels = load_digits()
    states, ts = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 5000))
    counts = np.bincount(np.asarray(states.label), minlength=10)
    assert counts.min() > 400 and counts.max() < 600
    pixels = np.asarray(ts.obs[:, 0, :64])
    np.testing.assert_array_equal(ts.obs[:, 0], ts.obs[:, 1])  # both see the same
    np.testing.assert_array_equal(np.asarray(ts.obs[:, 0, 64:]).argmax(-1), states.label)
    flat = images.reshape(len(images), -1)
    for x, label in zip(pixels[:50], np.asarray(states.label[:50]), strict=True):
        match = np.flatnonzero((flat == x).all(-1))
        assert len(match) and (labels[match] == label).all()


def test_the_digits_and_idx_loaders_agree_on_shapes_and_dtypes(mnist_files):
    (x, y), (mx, my) = load_digits(), load_idx(*mnist_files)
    assert x.shape == (1797, 8, 8) and mx.shape == (20, 28, 28)
    assert x.dtype == mx.dtype == np.float32 and y.dtype == my.dtype == np.int32
    assert x.min() >= 0 and x.max() <= 1 and mx.min() >= 0 and mx.max() <= 1
    np.testing.assert_array_equal(my, np.arange(20) % 10)
    env = envs.make(
        "games/contextual_pd", images_path=str(mnist_files[0]), labels_path=str(mnist_files[1])
    )
    _, ts = env.reset(jax.random.PRNGKey(0))
    assert ts.obs.shape == (2, 28 * 28 + 10)


def test_bad_image_files_are_refused(mnist_files, tmp_path):
    images, labels = mnist_files
    with pytest.raises(ValueError, match="idx magic number 2049, expected 2051"):
        load_idx(labels, labels)
    with pytest.raises(ValueError, match="give both images_path and labels_path"):
        envs.make("games/contextual_pd", images_path=str(images))
    short = tmp_path / "short-labels"
    write_idx(short, np.arange(5), IDX_LABELS)
    with pytest.raises(ValueError, match="20 images but 5 labels"):
        load_idx(images, short)
