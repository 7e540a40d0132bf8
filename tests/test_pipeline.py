"""Tests for deepjax.data.pipeline (grain over the TFDS ArrayRecord builders)."""
import json
import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from deepjax.data import pipeline
from deepjax.errors import UserError

SIZE = 8


def _folder(path, n, value_base):
  """n images whose red channel encodes their id (value_base + i), green = side."""
  path.mkdir()
  for i in range(n):
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[..., 0] = value_base + i
    img[..., 1] = value_base
    Image.fromarray(img).save(path / f"img{i:03d}.png")
  return str(path)


@pytest.fixture
def folders_config(tmp_path):
  return ml_collections.ConfigDict({
      "source": "folders", "size": SIZE,
      "a": _folder(tmp_path / "A", 11, 0), "b": _folder(tmp_path / "B", 7, 100),
      "test_fraction": 0.3, "data_dir": str(tmp_path / "data"),
      "worker_count": 0, "shuffle": True,
  })


def _ids(batch, side):
  return batch[side][:, 0, 0, 0].astype(int).tolist()


def test_host_batch_size():
  assert pipeline.host_batch_size(16, 4) == 4
  assert pipeline.host_batch_size(8) == 8  # one process here.
  with pytest.raises(UserError):
    pipeline.host_batch_size(10, 4)
  with pytest.raises(UserError):
    pipeline.host_batch_size(0, 1)


def test_swap_iterator_shapes(folders_config):
  it = pipeline.swap_iterator(folders_config, batch_size=3, seed=0)
  batch = next(it)
  assert set(batch) == {"a", "b", "a_landmarks", "b_landmarks", "a_has_landmarks",
                        "b_has_landmarks"}
  for s in "ab":
    assert batch[s].shape == (3, SIZE, SIZE, 3) and batch[s].dtype == np.uint8
    assert batch[f"{s}_landmarks"].shape == (3, 68, 2)
    assert batch[f"{s}_landmarks"].dtype == np.float32
    assert batch[f"{s}_has_landmarks"].shape == (3,)
    assert batch[f"{s}_has_landmarks"].dtype == np.bool_
  assert np.all(batch["a"][..., 1] == 0) and np.all(batch["b"][..., 1] == 100)
  assert "tensorflow" not in sys.modules


def test_train_epochs_cover_and_reshuffle(folders_config):
  it = pipeline.swap_iterator(folders_config, batch_size=1, seed=3)
  n_train = it.get_state()["meta"]["b_len"]
  seen = [_ids(next(it), "b")[0] for _ in range(3 * n_train)]
  epochs = [seen[i * n_train:(i + 1) * n_train] for i in range(3)]
  for e in epochs:  # each epoch is a permutation of the train split.
    assert sorted(e) == sorted(epochs[0]) and len(set(e)) == n_train
  assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
  # Another seed gives another order; the same seed the same order.
  it2 = pipeline.swap_iterator(folders_config, batch_size=1, seed=3)
  assert [_ids(next(it2), "b")[0] for _ in range(n_train)] == epochs[0]
  it3 = pipeline.swap_iterator(folders_config, batch_size=1, seed=4)
  assert [_ids(next(it3), "b")[0] for _ in range(n_train)] != epochs[0]


def test_no_shuffle_repeats_storage_order(folders_config):
  folders_config.shuffle = False
  it = pipeline.swap_iterator(folders_config, batch_size=1, seed=0)
  n = it.get_state()["meta"]["a_len"]
  ids = [_ids(next(it), "a")[0] for _ in range(2 * n)]
  assert ids[:n] == ids[n:] and len(set(ids[:n])) == n
  it2 = pipeline.swap_iterator(folders_config, batch_size=1, seed=5)
  assert [_ids(next(it2), "a")[0] for _ in range(n)] == ids[:n]


def test_state_restore_is_exact(folders_config):
  it = pipeline.swap_iterator(folders_config, batch_size=4, seed=7)
  for _ in range(3):
    next(it)
  state = json.loads(json.dumps(it.get_state()))  # JSON-serialisable.
  expect = [next(it) for _ in range(2)]
  fresh = pipeline.swap_iterator(folders_config, batch_size=4, seed=7)
  fresh.set_state(state)
  for want in expect:
    got = next(fresh)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])


def test_state_mismatch(folders_config, caplog):
  it = pipeline.swap_iterator(folders_config, batch_size=4, seed=7)
  next(it)
  state = it.get_state()
  other = pipeline.swap_iterator(folders_config, batch_size=2, seed=7)
  first = next(pipeline.swap_iterator(folders_config, batch_size=2, seed=7))
  other.set_state(state)  # ignored with a warning: starts from the beginning.
  assert "other data" in caplog.text
  np.testing.assert_array_equal(next(other)["a"], first["a"])
  with pytest.raises(UserError):
    other.set_state({"version": -1})


def test_sharding_disjoint_and_complete(folders_config):
  folders_config.shuffle = False
  n = 4
  seen = []
  for index in range(n):
    batches = pipeline.eval_batches(folders_config, batch_size=2, split="train",
                                    shard_index=index, shard_count=n)
    ids = [(i, v) for b in batches for i, v in zip(_ids(b, "a"), b["a_valid"])]
    seen.append(sorted(i for i, v in ids if v))
  flat = [i for s in seen for i in s]
  assert len(flat) == len(set(flat))  # disjoint.
  full = [i for b in pipeline.eval_batches(folders_config, 2, "train", shard_index=0,
                                           shard_count=1)
          for i, v in zip(_ids(b, "a"), b["a_valid"]) if v]
  assert sorted(flat) == sorted(full)  # complete.
  # Training shards are disjoint too (first epoch of each shard).
  folders_config.shuffle = True
  train_sets = []
  for index in range(2):
    it = pipeline.swap_iterator(folders_config, 1, seed=0, shard_index=index, shard_count=2)
    train_sets.append({_ids(next(it), "a")[0] for _ in range(3)})
  assert not train_sets[0] & train_sets[1]


def test_eval_batches_cover_once(folders_config):
  for bs in (1, 3):
    batches = list(pipeline.eval_batches(folders_config, batch_size=bs, split="test"))
    assert all(b["a"].shape[0] == bs and b["a_valid"].dtype == np.bool_ for b in batches)
    state = pipeline.swap_iterator(folders_config, 1, 0, split="test").get_state()["meta"]
    for side, n in (("a", state["a_len"]), ("b", state["b_len"])):
      ids = [i for b in batches for i, v in zip(_ids(b, side), b[f"{side}_valid"]) if v]
      assert len(ids) == n == len(set(ids))
    assert len(batches) == -(-max(state["a_len"], state["b_len"]) // bs)


def test_test_split_one_pass(folders_config):
  it = pipeline.swap_iterator(folders_config, batch_size=1, seed=0, split="test")
  n = min(it.get_state()["meta"]["a_len"], it.get_state()["meta"]["b_len"])
  assert len(list(it)) == n


def test_config_errors(folders_config, tmp_path):
  bad = ml_collections.ConfigDict(folders_config.to_dict())
  bad.source = "videos"
  with pytest.raises(UserError, match="source"):
    pipeline.swap_iterator(bad, 2, 0)
  bad = ml_collections.ConfigDict(folders_config.to_dict())
  bad.a = str(tmp_path / "nowhere")
  with pytest.raises(UserError, match="not found"):
    pipeline.swap_iterator(bad, 2, 0)
  bad = ml_collections.ConfigDict(folders_config.to_dict())
  bad.b = ""
  with pytest.raises(UserError, match="data.b is empty"):
    pipeline.swap_iterator(bad, 2, 0)
  bad = folders_config.to_dict()
  del bad["b"]
  with pytest.raises(UserError, match="'b'"):
    pipeline.swap_iterator(bad, 2, 0)
  nosplit = ml_collections.ConfigDict(folders_config.to_dict())
  nosplit.test_fraction = 0.0
  with pytest.raises(UserError, match="test"):
    pipeline.swap_iterator(nosplit, 2, 0, split="test")


def test_synthetic_source(tmp_path, monkeypatch):
  from test_builders import _stub_synthetic  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, "deepjax.data.synthetic", _stub_synthetic())
  cfg = ml_collections.ConfigDict({
      "source": "synthetic", "size": SIZE, "identity_a": 1, "identity_b": 2,
      "num_train": 6, "num_test": 2, "data_dir": str(tmp_path), "worker_count": 0,
      "shuffle": True})
  batch = next(pipeline.swap_iterator(cfg, batch_size=2, seed=0))
  assert batch["a"].shape == (2, SIZE, SIZE, 3) and batch["a_has_landmarks"].all()
  assert not np.array_equal(batch["a"][:, -1, -1], batch["b"][:, -1, -1])
  evals = list(pipeline.eval_batches(cfg, batch_size=2))
  assert len(evals) == 1 and evals[0]["a_valid"].all()


@pytest.mark.slow
def test_worker_processes_state(folders_config):
  folders_config.worker_count = 1
  it = pipeline.swap_iterator(folders_config, batch_size=2, seed=1)
  next(it)
  state = json.loads(json.dumps(it.get_state()))
  want = next(it)
  fresh = pipeline.swap_iterator(folders_config, batch_size=2, seed=1)
  fresh.set_state(state)
  np.testing.assert_array_equal(next(fresh)["a"], want["a"])


# ----------------------------------------------------------------------------- motion pairs


@pytest.fixture
def videos_config(tmp_path):
  from test_builders import make_video_folder  # pylint: disable=g-import-not-at-top
  folder = make_video_folder(tmp_path / "vids", n_videos=4, n_frames=5)
  return ml_collections.ConfigDict({
      "source": "videos", "size": SIZE, "folder": folder, "test_videos": ["clip3"],
      "repeats": 3, "data_dir": str(tmp_path / "data"), "worker_count": 0, "shuffle": True})


def _vid(images):
  """Video id decoded from the green level (60 * v + 20)."""
  return np.round((images[:, SIZE // 2, SIZE // 2, 1].astype(float) - 20) / 60).astype(int)


def _frame(images):
  return np.round(images[:, SIZE // 2, SIZE // 2, 0].astype(float) / 30).astype(int)


def test_pair_iterator(videos_config):
  from deepjax.data import motion_pipeline  # pylint: disable=g-import-not-at-top
  it = motion_pipeline.pair_iterator(videos_config, batch_size=4, seed=0)
  batches = [next(it) for _ in range(6)]
  b = batches[0]
  assert set(b) == {"source", "driving", "video"}
  assert b["source"].shape == (4, SIZE, SIZE, 3) and b["source"].dtype == np.uint8
  for b in batches:
    np.testing.assert_array_equal(_vid(b["source"]), _vid(b["driving"]))  # same video.
    assert np.all(_frame(b["source"]) != _frame(b["driving"]))  # distinct frames.
    assert set(_vid(b["source"])) <= {0, 1, 2}  # clip3 is held out.
  # An epoch (3 videos x 3 repeats = 9 slots) visits every video `repeats` times.
  it = motion_pipeline.pair_iterator(videos_config, batch_size=1, seed=1)
  vids = [int(_vid(next(it)["source"])[0]) for _ in range(9)]
  assert sorted(vids) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_pair_iterator_state(videos_config):
  from deepjax.data import motion_pipeline  # pylint: disable=g-import-not-at-top
  it = motion_pipeline.pair_iterator(videos_config, batch_size=2, seed=5)
  for _ in range(3):
    next(it)
  state = json.loads(json.dumps(it.get_state()))
  want = [next(it) for _ in range(2)]
  fresh = motion_pipeline.pair_iterator(videos_config, batch_size=2, seed=5)
  fresh.set_state(state)
  for w in want:
    got = next(fresh)
    for k in w:
      np.testing.assert_array_equal(got[k], w[k])


def test_eval_pairs(videos_config):
  from deepjax.data import motion_pipeline  # pylint: disable=g-import-not-at-top
  seen = []
  for index in range(3):
    for b in motion_pipeline.eval_pairs(videos_config, batch_size=2, shard_index=index,
                                        shard_count=3):
      assert b["source"].shape == (2, SIZE, SIZE, 3)
      np.testing.assert_array_equal(_frame(b["source"]), 0)
      np.testing.assert_array_equal(_frame(b["driving"]), b["frame"])
      seen += [(int(v), int(f)) for v, f, ok in zip(b["video"], b["frame"], b["valid"]) if ok]
  assert sorted(seen) == [(0, f) for f in range(5)]  # one test video, 5 frames, once each.
  with pytest.raises(UserError, match="source"):
    motion_pipeline.pair_iterator(dict(videos_config.to_dict(), source="x"), 2, 0)
  with pytest.raises(UserError, match="empty"):
    motion_pipeline.pair_iterator(dict(videos_config.to_dict(), folder="", video_dir=""), 2, 0)


def test_readers_picklable(folders_config, videos_config):
  """grain worker processes receive the pipeline by pickle."""
  import pickle  # pylint: disable=g-import-not-at-top
  from deepjax.data import motion_pipeline  # pylint: disable=g-import-not-at-top
  src = pipeline.identity_builders(folders_config, multihost=False)["a"].as_data_source("train")
  reader = pickle.loads(pickle.dumps(pipeline._EvalReader(src)))  # pylint: disable=protected-access
  assert reader((0, True))["image"].shape == (SIZE, SIZE, 3)
  b = motion_pipeline.video_builder(videos_config, multihost=False)
  vsrc = b.as_data_source("train")
  starts, counts = motion_pipeline.common.video_offsets(b, "train")
  groups = [np.array([0]), np.array([1, 2])]
  pair = pickle.loads(pickle.dumps(motion_pipeline._PairReader(  # pylint: disable=protected-access
      vsrc, starts, counts, groups, 0, 0, {"hue": 0.1, "time_flip": True})))
  assert pair(3, 1)["source"].shape == (SIZE, SIZE, 3)
  reader = motion_pipeline._EvalPairReader(vsrc, starts)  # pylint: disable=protected-access
  ev = pickle.loads(pickle.dumps(reader))
  assert int(ev(((1, 2), True))["frame"]) == 2


def test_hsv_matches_colorsys():
  import colorsys  # pylint: disable=g-import-not-at-top
  from deepjax.data import motion_pipeline as mp  # pylint: disable=g-import-not-at-top
  rgb = np.random.default_rng(0).uniform(0, 1, (200, 3))
  rgb[:3] = [[0.5, 0.5, 0.5], [0, 0, 0], [1, 0, 0]]  # grey, black, pure red.
  h, s, v = mp._rgb_to_hsv(rgb)  # pylint: disable=protected-access
  ref = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
  np.testing.assert_allclose(np.stack([h, s, v], -1), ref, atol=1e-12)
  back = mp._hsv_to_rgb(h, s, v)  # pylint: disable=protected-access
  ref_back = np.array([colorsys.hsv_to_rgb(*p) for p in ref])
  np.testing.assert_allclose(back, ref_back, atol=1e-12)
  np.testing.assert_allclose(back, rgb, atol=1e-12)


def test_augment_pair():
  from deepjax.data import motion_pipeline as mp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  src = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
  drv = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
  for seed in range(6):
    ref = np.random.default_rng(seed)
    flip, swap = ref.random() < 0.5, ref.random() < 0.5
    factor = ref.uniform(0.5, 1.5)
    s, d = mp.augment_pair(np.random.default_rng(seed), src, drv,
                           {"horizontal_flip": True, "time_flip": True, "brightness": 0.5})
    es, ed = (drv, src) if swap else (src, drv)
    if flip:
      es, ed = es[:, ::-1], ed[:, ::-1]
    bright = lambda x: np.round(np.clip(x / 255.0 * factor, 0, 1) * 255).astype(np.uint8)
    assert np.abs(s.astype(int) - bright(es)).max() <= 1
    assert np.abs(d.astype(int) - bright(ed)).max() <= 1
  same = mp.augment_pair(np.random.default_rng(1), src, drv, {})
  np.testing.assert_array_equal(same[0], src)
  np.testing.assert_array_equal(same[1], drv)


def test_id_sampling_and_config_aliases(tmp_path):
  from deepjax.data import motion_pipeline  # pylint: disable=g-import-not-at-top
  from deepjax.data import video  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "vox"
  folder.mkdir()
  names = ["idA#x.mp4", "idA#y.mp4", "idA#z.mp4", "idB#x.mp4", "idC#w.mp4"]
  for v, n in enumerate(names):
    frames = np.zeros((3, SIZE, SIZE, 3), np.uint8)
    frames[..., 0] = (30 * np.arange(3))[:, None, None]
    frames[..., 1] = 40 * v + 20
    video.write_video(str(folder / n), frames, fps=10)
  cfg = ml_collections.ConfigDict({
      "source": "videos", "size": SIZE, "video_dir": str(folder), "held_out": ["idC#w"],
      "num_repeats": 4, "id_sampling": True, "data_dir": str(tmp_path / "data"),
      "augmentation": {"horizontal_flip": True, "time_flip": True, "brightness": 0.1,
                       "contrast": 0.1, "saturation": 0.1, "hue": 0.1}})
  it = motion_pipeline.pair_iterator(cfg, batch_size=1, seed=0)
  assert it.get_state()["meta"]["groups"] == 2 and it.get_state()["meta"]["repeats"] == 4
  vids = [int(next(it)["video"][0]) for _ in range(8)]  # one epoch: 2 identities x 4.
  assert sum(v <= 2 for v in vids) == 4 and sum(v == 3 for v in vids) == 4
  ev = list(motion_pipeline.eval_pairs(cfg, batch_size=4))
  assert sum(int(b["valid"].sum()) for b in ev) == 3  # the held-out clip's 3 frames.
  cfg.augmentation = {"blur": 1.0}
  with pytest.raises(UserError, match="blur"):
    motion_pipeline.pair_iterator(cfg, batch_size=1, seed=0)
