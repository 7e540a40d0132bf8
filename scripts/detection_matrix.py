"""The detection matrix (README, issue 15) of a run folder of scripts/detection_matrix.sh.

Rows: the detectors `det_<row>` of the run (trained on SBI only, SBI + AE swaps, SBI + every
generator's fakes). Columns: self-blends of the test people's real crops ("sbi"), then each
generator's fakes of the test people against those people's real crops, as written and
after H.264 at CRF 23 and 28 (the reencode stage). Each cell is `deepjax.eval.detection.
evaluate_workdir` on the test split (people never in any detector's training split): frame
and video ROC AUC, EER and accuracy at 0.5. Writes RUN/matrix.json and RUN/matrix.md.
`--per_clip="ROW ..."` instead writes RUN/per_clip.md: per test person, the mean fake
probability of their real crops and of each generator's fakes (where a row's errors are).
`--thresholds="ROW ..."` instead writes RUN/thresholds.md: per row, the threshold that calls
5 % of the validation people's real crops fake, and accuracy at it and at 0.5 on each cell
(does a threshold set on held-out training people carry over to new people?).
`--fake_split=test2` scores the swaps of the other two test people instead (the sh script's
SWAP_SPLITS=test2: fakes no recipe was chosen on) -> RUN/matrix_test2.json and .md.

Usage: python scripts/detection_matrix.py --run=runs/detection_matrix \
         --test_people="lp_d3 lp_d9 lp_d12 lp_s18" --generators="ae vae gan fomm tpsmm"
"""
import argparse
import glob
import json
import os

import numpy as np

from deepjax.cli import program
from deepjax.data import detection_pipeline
from deepjax.eval import detection, detection_metrics

ROWS = (("sbi", "SBI only"), ("sbi_ae", "SBI + AE swaps"), ("sbi_all", "SBI + all generators"),
        ("sbi_all_30m_val", "all generators, 30 min on 2 cores, 2 people held out: last (EMA)"),
        ("sbi_all_30m_best", "all generators, 30 min on 2 cores: best validation AUC (EMA)"),
        ("sbi_all_30m_best_s1", "the same, `--config.seed=1`: best validation AUC (EMA)"),
        ("sbi_all_30m_val_s1", "the same, `--config.seed=1`: last (EMA)"),
        ("sbi_all_30m_val_noema", "all generators, 30 min, no moving average: last"),
        ("sbi_all_30m_best_noema", "the same, no moving average: best"),
        ("sbi_all_30m_vs_best", "all generators, 30 min, validation swaps: best (EMA)"),
        ("sbi_all_30m_vs", "the same, last (EMA)"),
        ("sbi_all_30m_vs_best_s1", "the same, `--config.seed=1`: best (EMA)"),
        ("sbi_all_30m_vs_s1", "the same, `--config.seed=1`: last (EMA)"),
        ("sbi_all_30m_vs_best_s2", "the same, `--config.seed=2`: best (EMA)"),
        ("sbi_all_30m_vs_s2", "the same, `--config.seed=2`: last (EMA)"),
        ("sbi_all_30m_bal_best", "all generators, 30 min, validation swaps, classes balanced: "
         "best (EMA)"),
        ("sbi_all_30m_bal_best_s1", "the same, `--config.seed=1`: best (EMA)"),
        ("sbi_all_30m_bal_best_s2", "the same, `--config.seed=2`: best (EMA)"),
        ("ens6x10", "ensemble of 6 detectors, 10 min on one core each (seeds 0-5): mean of "
         "their best (EMA)"),
        ("ens6x10_b", "the same, seeds 10-15"),
        ("ens6x10_c", "the same, seeds 20-25"),
        ("ens_sbi6x10", "SBI only, flips only: ensemble of 6 detectors, 10 min on one core each "
         "(seeds 0-5)"),
        ("ens_vs3", "ensemble of the three 30-minute runs with validation swaps (seeds 0-2)"),
        ("ens_30m6", "ensemble of those three and the three class-balanced 30-minute runs"),
        ("sbi_30m_noaug_best", "SBI only, flips only, 30 min on 2 cores: best validation AUC "
         "(EMA)"),
        ("sbi_30m_noaug", "the same, last (EMA)"),
        ("sbi_30m_frame_best", "SBI only, framing jitter only, 30 min on 2 cores: best "
         "validation AUC (EMA)"),
        ("sbi_30m_frame", "the same, last (EMA)"),
        ("sbi_reg_noaug_best", "SBI only, flips only, dropout 0.3, weight decay 0.05, 30 min "
         "on one core: best validation AUC (EMA)"),
        ("sbi_reg_noaug", "the same, last (EMA)"),
        ("sbi_reg_frame_best", "SBI only, framing jitter only, dropout 0.3, weight decay 0.05, "
         "30 min on the other core: best validation AUC (EMA)"),
        ("sbi_reg_frame", "the same, last (EMA)"),
        ("ens_sbi_reg2", "the mean of those two best checkpoints (30 min on 2 cores in all)"),
        ("sbi_dense_noaug_best", "SBI only, flips only, dropout 0.3, weight decay 0.05, every "
         "frame of the clips (TRAIN_REAL=real_dense), 30 min on one core: best validation AUC "
         "(EMA)"),
        ("sbi_dense_noaug", "the same, last (EMA)"),
        ("sbi_reg_noaug_b_best", "sbi_reg_noaug's recipe again (every 2nd frame, at most 400 "
         "read), on the other core beside sbi_dense_noaug: best validation AUC (EMA)"),
        ("sbi_reg_noaug_b", "the same, last (EMA)"),
        ("sbi_dense_noaug_s1_best", "sbi_dense_noaug with `--config.seed=1`: best validation "
         "AUC (EMA)"),
        ("sbi_dense_noaug_s1", "the same, last (EMA)"),
        ("sbi_dense_noaug_s2_best", "sbi_dense_noaug with `--config.seed=2` (beside seed 1): "
         "best validation AUC (EMA)"),
        ("sbi_dense_noaug_s2", "the same, last (EMA)"),
        ("ens_sbi_dense3", "the mean of the three dense seeds' best checkpoints"),
        ("sbi_dense_mask_best", "sbi_dense_noaug with the mask head (`:mask`, the self-blend "
         "masks as targets, mask_weight 0.5): best validation AUC (EMA)"),
        ("sbi_dense_mask", "the same, last (EMA)"),
        ("sbi_dense_mask_s1_best", "the same with `--config.seed=1`: best validation AUC (EMA)"),
        ("sbi_dense_mask_s1", "the same, last (EMA)"),
        ("sbi_dense_mask_s2_best", "the same with `--config.seed=2`: best validation AUC (EMA)"),
        ("sbi_dense_mask_s2", "the same, last (EMA)"),
        ("sbi_dense_mask_s3_best", "the same with `--config.seed=3`: best validation AUC (EMA)"),
        ("sbi_dense_mask_s3", "the same, last (EMA)"),
        ("sbi_dense_hp_best", "sbi_dense_noaug with `--config.model.input_filter=highpass`: "
         "best validation AUC (EMA)"),
        ("sbi_dense_hp", "the same, last (EMA)"),
        ("sbi_dense_hp_s1_best", "the highpass recipe with `--config.seed=1`: best validation "
         "AUC (EMA)"),
        ("sbi_dense_hp_s1", "the same, last (EMA)"),
        ("sbi_dense_hp_s2_best", "the highpass recipe with `--config.seed=2`: best validation "
         "AUC (EMA)"),
        ("sbi_dense_hp_s2", "the same, last (EMA)"),
        ("sbi_dense_hp_s3_best", "the highpass recipe with `--config.seed=3`: best validation "
         "AUC (EMA)"),
        ("sbi_dense_hp_s3", "the same, last (EMA)"),
        ("sbi_dense_hpframe_best", "the highpass recipe with framing jitter, no colour jitter: "
         "best validation AUC (EMA)"),
        ("sbi_dense_hpframe", "the same, last (EMA)"),
        ("sbi_dense_hpframe_s1_best", "the highpass + framing recipe with `--config.seed=1`: "
         "best validation AUC (EMA)"),
        ("sbi_dense_hpframe_s1", "the same, last (EMA)"),
        ("sbi_dense_hpframe_s2_best", "the highpass + framing recipe with `--config.seed=2`: "
         "best validation AUC (EMA)"),
        ("sbi_dense_hpframe_s2", "the same, last (EMA)"),
        ("sbi_dense_hpframe_s3", "`configs/detect.py:tiny,highpass` (the same recipe by its "
         "argument) with `--config.seed=3`: last (EMA)"),
        ("sbi_dense_hpframe_s4", "the same with `--config.seed=4` (beside seed 3): last (EMA)"),
        ("sbi_dense_hpmask_best", "the highpass recipe with the mask head (`,noaug,mask`): "
         "best validation AUC (EMA)"),
        ("sbi_dense_hpmask", "the same, last (EMA)"),
        ("ens_hp_s12", "mean of sbi_dense_hp_s1_best and sbi_dense_hp_s2_best (trained side by "
         "side: 30 min on 2 cores in all)"),
        ("ens_hp_s01", "mean of sbi_dense_hp_best and sbi_dense_hp_s1_best (2 x 30 min on one "
         "core)"),
        ("ens_hp_s02", "mean of sbi_dense_hp_best and sbi_dense_hp_s2_best (2 x 30 min on one "
         "core)"),
        ("ens_hp_s03", "mean of sbi_dense_hp_best and sbi_dense_hp_s3_best"),
        ("ens_hp_s13", "mean of sbi_dense_hp_s1_best and sbi_dense_hp_s3_best"),
        ("ens_hp_s23", "mean of sbi_dense_hp_s2_best and sbi_dense_hp_s3_best"),
        ("ens_hpframe_s01", "mean of sbi_dense_hpframe and sbi_dense_hpframe_s1 (last "
         "checkpoints)"),
        ("ens_hpframe_s02", "mean of sbi_dense_hpframe and sbi_dense_hpframe_s2 (last "
         "checkpoints)"),
        ("ens_hpframe_s12", "mean of sbi_dense_hpframe_s1 and sbi_dense_hpframe_s2 (last "
         "checkpoints; trained side by side)"),
        ("ens_hpframe_s34", "mean of sbi_dense_hpframe_s3 and sbi_dense_hpframe_s4 (last "
         "checkpoints; trained side by side)"),
        ("ae_hpframe", "AE training swaps + SBI, `configs/detect.py:tiny` (the high-pass "
         "recipe), every frame (TRAIN_REAL=real_dense), 30 min on one core: last (EMA)"),
        ("ae_hpframe_best", "the same, best validation AUC (EMA)"),
        ("ae_hpframe_s1", "the same with `--config.seed=1`: last (EMA)"),
        ("ens_ae_hpframe_s01", "mean of ae_hpframe and ae_hpframe_s1 (last checkpoints)"),
        ("all_hpframe", "all generators' training fakes + SBI, `configs/detect.py:tiny,"
         "highpass`, every frame (TRAIN_REAL=real_dense), 30 min on one core: last (EMA)"),
        ("all_hpframe_best", "the same, best validation AUC (EMA)"),
        ("all_hpframe_s1", "the same with `--config.seed=1`: last (EMA)"),
        ("all_hpframe_s2", "the same with `--config.seed=2`: last (EMA)"),
        ("all_hpframe_s3", "the same with `--config.seed=3`: last (EMA)"),
        ("all_hpframe_s4", "the same with `--config.seed=4`: last (EMA)"),
        ("ens_all_hpframe_s01", "mean of all_hpframe and all_hpframe_s1 (last checkpoints)"),
        ("ens_all_hpframe_s12", "mean of all_hpframe_s1 and all_hpframe_s2 (last checkpoints)"),
        ("ens_all_hpframe_s34", "mean of all_hpframe_s3 and all_hpframe_s4 (last checkpoints)"),
        ("ens_hp3", "mean of the three highpass seeds' best checkpoints (3 x 30 min on one core: "
         "over the issue's budget)"),
        ("sbi_dense_std_best", "sbi_dense_noaug with `--config.model.input_filter=standardize` "
         "(beside highpass): best validation AUC (EMA)"),
        ("sbi_dense_std", "the same, last (EMA)"),
        ("sbi_noaug", "SBI only, flips only"), ("sbi_ae_noaug", "SBI + AE swaps, flips only"),
        ("sbi_all_noaug", "all generators, flips only"),
        ("sbi_all_noaug_s1", "all generators, flips only, seed 1"),
        ("sbi_all_30m_noaug", "all generators, flips only, 30 min on 2 cores"),
        ("sbi_all_aug", "all generators, framing + colour + quality + noise"),
        ("sbi_aug", "SBI only, framing + colour + quality + noise"))
# rows whose detector is not det_<row> (nor det_<stem>/best for a row <stem>_best)
ROW_DIRS = {"sbi_all_30m_best": os.path.join("det_sbi_all_30m_val", "best"),
            "sbi_all_30m_best_noema": os.path.join("det_sbi_all_30m_val_noema", "best"),
            "sbi_all_30m_best_s1": os.path.join("det_sbi_all_30m_val_s1", "best"),
            "sbi_all_30m_vs_best": os.path.join("det_sbi_all_30m_vs", "best"),
            "sbi_all_30m_vs_best_s1": os.path.join("det_sbi_all_30m_vs_s1", "best"),
            "sbi_all_30m_vs_best_s2": os.path.join("det_sbi_all_30m_vs_s2", "best")}
ROW_DIRS.update({f"sbi_all_30m_bal_best{s}": os.path.join(f"det_sbi_all_30m_bal{s}", "best")
                 for s in ("", "_s1", "_s2")})


def _seed_pairs(row, stem, tail, pairs):
  """Two-seed ensemble rows {row}_s{a}{b}: the run folders {stem} (seed 0) or {stem}_s{n},
  each + `tail` ("/best": the checkpoint validation chose; "": the last)."""
  def folder(n):
    return f"{stem}{'' if n == '0' else '_s' + n}{tail}"
  return {f"{row}_s{a}{b}": [folder(a), folder(b)] for a, b in pairs}


# ensembles: the mean fake probability of these detectors (`--per_clip` and the matrix alike)
ROW_DIRS.update({"ens6x10": [f"det_ens6x10_s{s}/best" for s in range(6)],
                 "ens6x10_b": [f"det_ens6x10_s{s}/best" for s in range(10, 16)],
                 "ens6x10_c": [f"det_ens6x10_s{s}/best" for s in range(20, 26)],
                 "ens_sbi6x10": [f"det_ens_sbi6x10_s{s}/best" for s in range(6)],
                 "ens_sbi_reg2": ["det_sbi_reg_noaug/best", "det_sbi_reg_frame/best"],
                 "ens_sbi_dense3": [f"det_sbi_dense_noaug{s}/best" for s in ("", "_s1", "_s2")],
                 **_seed_pairs("ens_hp", "det_sbi_dense_hp", "/best",
                               ("01", "02", "03", "12", "13", "23")),
                 **_seed_pairs("ens_hpframe", "det_sbi_dense_hpframe", "",
                               ("01", "02", "12", "34")),
                 **_seed_pairs("ens_ae_hpframe", "det_ae_hpframe", "", ("01",)),
                 **_seed_pairs("ens_all_hpframe", "det_all_hpframe", "", ("01", "12", "34")),
                 "ens_hp3": [f"det_sbi_dense_hp{s}/best" for s in ("", "_s1", "_s2")],
                 "ens_vs3": [ROW_DIRS[r] for r in ("sbi_all_30m_vs_best", "sbi_all_30m_vs_best_s1",
                                                   "sbi_all_30m_vs_best_s2")]})
ROW_DIRS["ens_30m6"] = ROW_DIRS["ens_vs3"] + [ROW_DIRS[f"sbi_all_30m_bal_best{s}"]
                                              for s in ("", "_s1", "_s2")]
ROW_DIRS.update({f"ens6x10_s{s}": f"det_ens6x10_s{s}/best"
                 for s in (*range(6), *range(10, 16), *range(20, 26))})
ROW_DIRS.update({f"ens_sbi6x10_s{s}": f"det_ens_sbi6x10_s{s}/best" for s in range(6)})
QUALITIES = (("", "as written"), ("crf23", "H.264 CRF 23"), ("crf28", "H.264 CRF 28"))


def row_dirs(run, row) -> list[str]:
  """The run folders of a row's detector (several for an ensemble): ROW_DIRS's entry, else
  det_<stem>/best for a row <stem>_best (the checkpoint its validation chose), else det_<row>."""
  stem = row[:-len("_best")] if row.endswith("_best") else None
  dirs = ROW_DIRS.get(row, os.path.join(f"det_{stem}", "best") if stem else f"det_{row}")
  return [os.path.join(run, d) for d in ([dirs] if isinstance(dirs, str) else dirs)]


def cell_data(base, people, generator, split="test"):
  """The data config of a cell: the people's real crops and `generator`'s fakes of them from
  the fakes stage's `split` (fakes/<generator>_<split>_*; the real crops alone for "sbi");
  None when there are no such fakes."""
  folders = [f"real:{os.path.join(base, 'real', p)}" for p in people]
  if generator != "sbi":
    fakes = sorted(glob.glob(os.path.join(base, "fakes", f"{generator}_{split}_*")))
    if not fakes:
      return None
    folders += [f"{generator}:{f}" for f in fakes]
  return {"source": "folders", "folders": tuple(folders)}


def cell(workdir, base, people, generator, split="test"):
  data = cell_data(base, people, generator, split)
  if data is None:
    return None
  return detection.evaluate_workdir(workdir, "test", data=data, eval_sbi=generator == "sbi")


def per_clip(workdir, base, people, generators, split="test") -> str:
  """A markdown table: per test person, the mean fake probability of their real crops and
  of each generator's fakes made from their clip (as written); each generator's cell data,
  so the data sets the matrix prepared are reused."""
  names = {int(detection_pipeline.clip_id(p)): p for p in people}
  means = {}
  for generator in generators:
    data = cell_data(base, people, generator, split)
    if data is None:
      continue
    scores, _, videos, _ = detection.scores_workdir(workdir, "test", data=data, eval_sbi=False)
    for video in np.unique(videos):
      person = names.get(int(video // 2), str(video // 2))
      column = generator if video % 2 else "real"
      means.setdefault(person, {})[column] = float(scores[videos == video].mean())
  cols = ["real"] + list(generators)
  out = ["| test person | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
  for person in people:
    out.append(f"| {person} | " + " | ".join(fmt(means.get(person, {}).get(c)) for c in cols)
               + " |")
  return "\n".join(out)


def thresholds(workdir, base, people, generators, split="test") -> str:
  """Markdown rows: the detector's threshold at 5 % false positives on its validation
  people's real crops, and per generator the accuracy on the test people at 0.5 / at it."""
  scores, labels, _, _ = detection.scores_workdir(workdir, "validation", eval_sbi=False)
  t = detection_metrics.threshold_at_fpr(scores, labels, 0.05)
  cells, real = [], None  # real: the share of the test people's real crops at or above t
  for generator in generators:
    data = cell_data(base, people, generator, split)
    if data is None:
      cells.append("–")
      continue
    s, y, _, _ = detection.scores_workdir(workdir, "test", data=data, eval_sbi=False)
    real = float(np.mean(s[y == 0] >= t))  # the same real crops in every cell
    cells.append(f"{detection_metrics.accuracy(s, y):.2f} / "
                 f"{detection_metrics.accuracy(s, y, t):.2f}")
  return f"{t:.3f} | {fmt(real, 2)} | " + " | ".join(cells)


def fmt(value, digits=3):
  return "–" if value is None else f"{value:.{digits}f}"


def tables(results, generators) -> str:
  out = []
  for quality, title in QUALITIES:
    cols = (["sbi"] if not quality else []) + generators
    for metric, heading in (("auc", "frame AUC / video AUC"), ("eer", "frame EER / accuracy@0.5")):
      out.append(f"**{title}: {heading}**\n")
      out.append("| trained on | " + " | ".join(cols) + " |")
      out.append("|---|" + "---:|" * len(cols))
      for row, name in ROWS:
        cells = []
        for col in cols:
          r = results.get(row, {}).get(quality or "written", {}).get(col)
          if not r:
            cells.append("–")
          elif metric == "auc":
            cells.append(f"{fmt(r['auc'])} / {fmt(r.get('video_auc'), 2)}")
          else:
            cells.append(f"{fmt(r['eer'])} / {fmt(r['accuracy'])}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
      out.append("")
  return "\n".join(out)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--run", default="runs/detection_matrix")
  parser.add_argument("--test_people", default="lp_d3 lp_d9 lp_d12 lp_s18")
  parser.add_argument("--generators", default="ae vae gan fomm tpsmm")
  parser.add_argument("--rows", default="", help="score only these rows (e.g. sbi_all_30m); "
                      "the other rows' cells are kept from RUN/matrix.json")
  parser.add_argument("--per_clip", default="", help="instead of the matrix: for these rows, "
                      "the mean fake probability per test person of real crops and of each "
                      "generator's fakes -> RUN/per_clip.md")
  parser.add_argument("--thresholds", default="", help="instead of the matrix: for these "
                      "rows, a threshold set on the validation people's real crops (5 %% "
                      "false positives) and accuracy at 0.5 / at it -> RUN/thresholds.md")
  parser.add_argument("--fake_split", default="test", help="score the fakes of this split of "
                      "the fakes stage (test2: TEST2_PAIR's swaps) -> RUN/matrix_<split>.json "
                      "and .md (RUN/matrix.json for test)")
  args = parser.parse_args()
  split = args.fake_split
  suffix = "" if split == "test" else f"_{split}"  # RUN/matrix{suffix}.json, per_clip{suffix}.md
  program.enable_compilation_cache()
  people, generators = args.test_people.split(), args.generators.split()
  if args.thresholds:
    md = ["| detector | threshold | new people's real crops at or above it | " +
          " | ".join(f"{g}: accuracy at 0.5 / at it" for g in generators) + " |",
          "|---|---:|---:|" + "---:|" * len(generators)]
    for row in args.thresholds.split():
      md.append(f"| {row} | " + thresholds(row_dirs(args.run, row), args.run, people,
                                           generators, split) + " |")
    with open(os.path.join(args.run, f"thresholds{suffix}.md"), "w", encoding="utf-8") as f:
      f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return
  if args.per_clip:
    md = []
    for row in args.per_clip.split():
      table = per_clip(row_dirs(args.run, row), args.run, people, generators, split)
      md.append(f"**{dict(ROWS).get(row, row)}** (`{row}`)\n\n{table}\n")
    with open(os.path.join(args.run, f"per_clip{suffix}.md"), "w", encoding="utf-8") as f:
      f.write("\n".join(md))
    print("\n".join(md))
    return
  results, only = {}, set(args.rows.split())
  saved = os.path.join(args.run, f"matrix{suffix}.json")
  if only and os.path.exists(saved):
    with open(saved, encoding="utf-8") as f:
      results = {k: v for k, v in json.load(f).items() if k not in only}
  rows = list(ROWS) + [(r, r) for r in sorted(only - dict(ROWS).keys())]
  for row, _ in rows:
    workdir = row_dirs(args.run, row)
    if not all(os.path.isdir(d) for d in workdir) or (only and row not in only):
      continue
    for quality, _ in QUALITIES:
      base = os.path.join(args.run, quality) if quality else args.run
      for col in (["sbi"] if not quality else []) + generators:
        r = cell(workdir, base, people, col, split)
        if r is None:
          continue
        results.setdefault(row, {}).setdefault(quality or "written", {})[col] = r
        print(f"{row:8s} {quality or 'written':8s} {col:6s} frame AUC {r['auc']:.3f} "
              f"video AUC {fmt(r.get('video_auc'), 2)} EER {r['eer']:.3f} "
              f"acc {r['accuracy']:.3f} ({r['n_real']} real, {r['n_fake']} fake, step "
              f"{r['step']})", flush=True)
  with open(saved, "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2)
  md = tables(results, generators)
  with open(os.path.join(args.run, f"matrix{suffix}.md"), "w", encoding="utf-8") as f:
    f.write(md + "\n")
  print(md)


if __name__ == "__main__":
  main()
