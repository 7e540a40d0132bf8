"""deepjax.data.builders: TFDS builders writing ArrayRecord files (no TensorFlow).

Call the `prepare_*` functions (build if needed, return the builder); they do not
depend on TFDS registration names. Read with `builder.as_data_source(split)`.

- `face_folders.prepare_face_folder(folder, size, data_dir, test_fraction)`: one
  folder of face images (+ optional alignments.json) = one identity.
- `synthetic_faces.prepare_synthetic(identity_seed, num_train, size, data_dir,
  num_test, split_seeds)`: frames of one procedural identity with exact truth.
- `synthetic_faces.prepare_synthetic_videos(train_ids, test_ids, num_frames, size,
  data_dir)`: one smooth clip per procedural identity (motion model).
- `talking_heads.prepare_talking_heads(folder, size, data_dir, frame_step,
  max_frames, test_fraction, test_videos)`: frames of a folder of videos.

`data_dir` defaults to `common.DEFAULT_DATA_DIR` (~/.cache/deepjax/datasets).
"""
