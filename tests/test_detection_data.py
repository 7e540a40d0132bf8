"""The detection builder (labels, identity split, masks) and its grain pipeline."""
import json
import os

import numpy as np
import pytest

from deepjax.data import detection_pipeline, images
from deepjax.data.builders import detection
from deepjax.errors import UserError

SIZE = 32


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  root = tmp_path_factory.mktemp("detection")
  real = detection.write_synthetic_folder(str(root / "real"), range(4), 3, SIZE)
  fake = root / "ae_run"
  (fake / "masks").mkdir(parents=True)
  rng = np.random.default_rng(0)
  faces = []
  for i, ident in enumerate(["synthetic_1", "synthetic_2", "synthetic_3"]):
    file = f"swap_{i}.png"
    images.write_image(str(fake / file), rng.integers(0, 256, (SIZE, SIZE, 3), np.uint8))
    faces.append({"file": file, "source": f"/runs/clip_{i}.mp4", "frame": i, "identity": ident})
  mask = np.zeros((SIZE, SIZE), np.uint8)
  mask[8:24, 10:20] = 255
  images.write_image(str(fake / "masks" / "swap_0.png"), mask)
  with open(fake / "alignments.json", "w", encoding="utf-8") as f:
    json.dump({"faces": faces}, f)
  return root, real, str(fake), mask


@pytest.fixture(scope="module")
def built(folders):
  root, real, fake, _ = folders
  return detection.prepare_detection([("real", real), ("ae", fake)], SIZE,
                                     str(root / "tfds"), test_identities=("synthetic_2",))


def records(builder, split):
  src = builder.as_data_source(split)
  return [src[i] for i in range(len(src))]


def test_labels_generators_and_identity_split(built):
  train, test = records(built, "train"), records(built, "test")
  assert len(train) + len(test) == 4 * 3 + 3
  ids = {s: {r["identity"].decode() for r in rs} for s, rs in (("train", train), ("test", test))}
  assert ids["test"] == {"synthetic_2"} and not ids["train"] & ids["test"]
  for r in train + test:
    gen = r["generator"].decode()
    assert r["label"] == (gen != "real") and gen in ("real", "ae")
  reals = [r for r in train if r["label"] == 0]
  assert all(r["has_landmarks"] for r in reals) and len(reals) == 9
  assert {r["clip"].decode() for r in train if r["label"] == 1} == {"clip_0", "clip_2"}


def test_masks(built, folders):
  mask = folders[3]
  by_file = {r["file"].decode(): r for r in records(built, "train") + records(built, "test")}
  assert by_file["swap_0.png"]["mask"].shape == (SIZE, SIZE, 1)
  np.testing.assert_array_equal(by_file["swap_0.png"]["mask"][..., 0], mask)
  assert np.all(by_file["swap_1.png"]["mask"] == 255)  # fake without a mask file: whole crop
  assert np.all(by_file["synthetic_0_00000.png"]["mask"] == 0)


def test_hash_split_never_splits_an_identity(folders):
  root, real, _, _ = folders
  b = detection.prepare_detection([("real", real)], SIZE, str(root / "tfds"), test_fraction=0.5)
  splits = {s: {r["identity"] for r in records(b, s)} for s in ("train", "test")}
  assert splits["train"] and splits["test"] and not splits["train"] & splits["test"]


def test_folders_of_test_people_only_have_a_test_split(folders, tmp_path):
  """Folders to evaluate a detector on (every identity held out): a test split, no train
  split, and asking to train on them says why in one line."""
  _, real, _, _ = folders
  ids = tuple(f"synthetic_{i}" for i in range(4))
  b = detection.prepare_detection([("real", real)], SIZE, str(tmp_path), test_identities=ids)
  assert set(b.info.splits) == {"test"} and len(records(b, "test")) == 12
  cfg = {"source": "folders", "size": SIZE, "folders": (f"real:{real}",),
         "test_identities": ids, "data_dir": str(tmp_path)}
  with pytest.raises(UserError, match="training needs an identity outside"):
    detection_pipeline.detection_iterator(cfg, 4, seed=0, split="train", shard_by_process=False)


def test_bad_folders(folders, tmp_path):
  with pytest.raises(UserError):
    detection.prepare_detection([("real", str(tmp_path / "missing"))], SIZE, str(tmp_path))
  with pytest.raises(UserError):
    detection.prepare_detection([("real", folders[1])], SIZE, str(tmp_path),
                                test_identities=("nobody",))
  with pytest.raises(UserError):
    detection_pipeline.parse_folders(["no_generator_here"])


def test_pipeline_batches(folders, built):
  root, real, fake, _ = folders
  cfg = {"source": "folders", "size": SIZE, "folders": (f"real:{real}", f"ae:{fake}"),
         "test_identities": ("synthetic_2",), "data_dir": str(root / "tfds")}
  it = detection_pipeline.detection_iterator(cfg, 4, seed=0, split="train",
                                             shard_by_process=False)
  batch = next(it)
  assert batch["image"].shape == (4, SIZE, SIZE, 3) and batch["image"].dtype == np.uint8
  assert batch["mask"].shape == (4, SIZE, SIZE, 1) and batch["label"].dtype == np.int32
  assert batch["landmarks"].shape == (4, 68, 2) and batch["valid"].all()
  assert batch["clip_id"].dtype == np.int32 and batch["clip_id"].shape == (4,)
  state = it.get_state()
  nxt = next(it)
  it.set_state(state)
  np.testing.assert_array_equal(next(it)["index"], nxt["index"])
  test = list(detection_pipeline.detection_iterator(cfg, 4, seed=0, split="test",
                                                    shard_by_process=False))
  valid = np.concatenate([b["valid"] for b in test])
  index = np.concatenate([b["index"] for b in test])[valid]
  assert len(test) == 1 and sorted(index) == [0, 1, 2, 3]  # 3 real + 1 fake of synthetic_2
  assert os.path.isdir(root / "tfds")


def test_swapped_crops_are_labelled_fakes_of_their_source(folders, tmp_path):
  """`deepjax swap --input=CROPS` output feeds the builder: each fake keeps its input's clip,
  identity and landmarks, names its generator, and has a mask (the whole crop for the AE)."""
  from deepjax import testing  # pylint: disable=import-outside-toplevel
  from deepjax.infer.swap import Swapper  # pylint: disable=import-outside-toplevel
  from deepjax.infer.swap_images import swap_images  # pylint: disable=import-outside-toplevel
  _, real, _, _ = folders
  swapper = Swapper(testing.random_swap_run(str(tmp_path / "run")))
  crops = images.list_images(real)[:4]
  out = str(tmp_path / "fakes")
  assert swap_images(swapper, crops, out, "a2b") == 4
  before = {f["file"]: f for f in detection.folder_faces(real, "real")}
  after = detection.folder_faces(out, "swaps")
  assert len(after) == 4
  for f, src in zip(sorted(after, key=lambda f: f["file"]), sorted(crops)):
    b = before[os.path.basename(src)]
    assert f["generator"] == "ae" and (f["clip"], f["identity"]) == (b["clip"], b["identity"])
    np.testing.assert_array_equal(f["landmarks"], b["landmarks"])
    assert images.read_image(os.path.join(out, f["file"])).shape == (SIZE, SIZE, 3)
    mask = images.read_image(os.path.join(out, "masks", f["file"]))
    assert mask.shape[:2] == (SIZE, SIZE) and mask.min() == 255


def test_swap_images_warns_when_the_mask_is_empty(folders, tmp_path):
  """A model whose mask is empty on some faces (outputs = inputs) is named in a warning with
  the count, and the faces are still written."""
  from deepjax.infer.swap_images import swap_images  # pylint: disable=import-outside-toplevel
  _, real, _, _ = folders

  class CopyingSwapper:  # the outputs of a GAN whose mask collapsed on the first two faces
    size = SIZE
    config = type("Config", (), {"task": "gan"})

    def __call__(self, faces, direction):
      masks = np.ones(faces.shape[:3] + (1,), np.float32)
      masks[:2] = 0.0
      return faces, masks

  lines = []
  crops = images.list_images(real)[:4]
  assert swap_images(CopyingSwapper(), crops, str(tmp_path / "fakes"), "a2b",
                     log=lines.append) == 4
  assert len(lines) == 1 and "mask is empty on 2 of 4 faces" in lines[0]
  assert len(images.list_images(str(tmp_path / "fakes"))) == 4


def _program(*args):
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return subprocess.run([sys.executable, "-m", "deepjax", "detect-data", *args],
                        capture_output=True, text=True, cwd=repo, timeout=300, check=False,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def test_detect_data_program_prepares_and_lists(folders, tmp_path):
  _, real, fake, _ = folders
  cfg = [f"--config=configs/detect.py:tiny,res=32,folders=real:{real}+ae:{fake}",
         f"--config.data.data_dir={tmp_path}", "--config.data.test_identities=('synthetic_2',)"]
  p = _program(*cfg)
  assert p.returncode == 0, p.stderr[-2000:]
  lines = p.stdout.strip().splitlines()
  assert lines[1] == "train: 11 crops (ae 2, real 9); 3 identities: synthetic_0, synthetic_1, synthetic_3"
  assert lines[2] == "test: 4 crops (ae 1, real 3); 1 identities: synthetic_2"
  built = os.path.join(str(tmp_path), "detection")
  assert os.path.isdir(built)  # where `deepjax train` with the same config finds it
  bad = _program("--config=configs/faceswap_ae.py:tiny")
  err = bad.stderr.strip().splitlines()
  assert bad.returncode == 2 and err[-1].startswith("error:") and "not a detector" in err[-1]


def _tiny_detector_config(tmp_path, size=SIZE):
  from deepjax.configs_lib import load_config  # pylint: disable=import-outside-toplevel
  config = load_config("detect", "tiny")
  with config.unlocked():
    config.model.update(stem=8, stages=((8, 1, 1, 3, 1), (16, 1, 2, 3, 2)), head=16,
                        mask_stage=1)
    config.data.update(size=size, test_identities=("synthetic_1", "synthetic_2"),
                       data_dir=str(tmp_path / "tfds"))
  return config


def test_evaluate_a_detector_on_other_folders_with_and_without_self_blends(folders, tmp_path):
  """The detection matrix's cells: a detector run scored on folders of held-out people
  only, real against one generator's fakes (--nosbi) or against self-blends (--sbi)."""
  from deepjax import testing  # pylint: disable=import-outside-toplevel
  from deepjax.eval import detection as det  # pylint: disable=import-outside-toplevel
  _, real, fake, _ = folders
  run = testing.random_detect_run(str(tmp_path / "run"), _tiny_detector_config(tmp_path))
  data = {"source": "folders", "folders": (f"real:{real}", f"ae:{fake}")}
  plain = det.evaluate_workdir(run, "test", batch_size=4, data=data, eval_sbi=False)
  assert (plain["n_real"], plain["n_fake"]) == (6, 2), plain  # 2 people x 3 real, 2 swaps
  blended = det.evaluate_workdir(run, "test", batch_size=4, data=data, eval_sbi=True)
  assert (blended["n_real"], blended["n_fake"]) == (6, 8), blended  # + a blend of each real
  assert 0 <= plain["auc"] <= 1 and plain["step"] == 0 and plain["task"] == "detection"


def test_an_ensemble_scores_the_mean_of_its_members(folders, tmp_path):
  """Several detector runs (a list or "A,B") score every crop with the mean of their fake
  probabilities, in evaluation and in `deepjax detect`'s scorer; members that take other
  crop sizes are refused."""
  from deepjax import testing  # pylint: disable=import-outside-toplevel
  from deepjax.eval import detection as det  # pylint: disable=import-outside-toplevel
  from deepjax.infer import detect  # pylint: disable=import-outside-toplevel
  _, real, fake, _ = folders
  config = _tiny_detector_config(tmp_path)
  runs = [testing.random_detect_run(str(tmp_path / f"run{i}"), config, seed=i) for i in (0, 1)]
  data = {"source": "folders", "folders": (f"real:{real}", f"ae:{fake}")}
  one = [det.scores_workdir(r, "test", 4, data, eval_sbi=True) for r in runs]
  both = det.scores_workdir(",".join(runs), "test", 4, data, eval_sbi=True)
  assert not np.allclose(one[0][0], one[1][0])  # two different detectors
  np.testing.assert_allclose(both[0], (one[0][0] + one[1][0]) / 2, rtol=1e-5)
  np.testing.assert_array_equal(both[1], one[0][1])
  assert both[3] == [0, 0]
  report = det.evaluate_workdir(runs, "test", 4, data, eval_sbi=True)
  assert report["members"] == runs and (report["n_real"], report["n_fake"]) == (6, 8)
  crops = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), np.uint8)
  probs = [detect.load_scorer(r)[0](crops) for r in runs]
  ens_probs, ens_masks = detect.load_scorer(runs)[0](crops)
  np.testing.assert_allclose(ens_probs, (probs[0][0] + probs[1][0]) / 2, rtol=1e-5)
  assert ens_masks is None  # no member has a mask head
  other = testing.random_detect_run(str(tmp_path / "run64"), _tiny_detector_config(tmp_path, 64))
  with pytest.raises(UserError, match="crop size"):
    detect.load_scorer([runs[0], other])
  with pytest.raises(UserError, match="crop size"):
    det.scores_workdir([runs[0], other], "test", 4, data)


def test_validation_identities_leave_training_for_their_own_split(folders, tmp_path):
  _, real, fake, _ = folders
  pairs = [("real", real), ("ae", fake)]
  b = detection.prepare_detection(pairs, SIZE, str(tmp_path), test_identities=("synthetic_2",),
                                  val_identities=("synthetic_1",))
  ids = {s: {bytes(r["identity"]).decode() for r in records(b, s)}
         for s in ("train", "validation", "test")}
  assert ids == {"train": {"synthetic_0", "synthetic_3"}, "validation": {"synthetic_1"},
                 "test": {"synthetic_2"}}
  # the swap of synthetic_1 goes with that person
  assert sorted(int(r["label"]) for r in records(b, "validation")) == [0, 0, 0, 1]
  # without validation people the data set keeps the name it had before the option
  plain = detection.detection_config(pairs, SIZE, test_identities=("synthetic_2",))
  assert plain.name == detection.detection_config(pairs, SIZE, 0.2, ("synthetic_2",), "png",
                                                  ()).name
  assert plain.name != b.builder_config.name
  for val, why in ((("nobody",), "not found"), (("synthetic_2",), "both validation and test")):
    with pytest.raises(UserError, match=why):
      detection.plan_splits(pairs, 0.2, ("synthetic_2",), val)
