"""Evaluation: how well an embedding separates same-title negatives, and how well the encoders transfer.

- :mod:`avplug.evaluation.discrepancy`: the S+ / S- / S!= score distributions of the paper's Eq. 2
  on held-out titles and the discrepancy measures with intervals; ``heldout_measures`` is the one
  entry point for held-out figures (retrieval and discrepancy, flat keys);
  :mod:`avplug.evaluation.heldout_embedding`: ``evaluate_discrepancy`` embeds a model's held-out
  snippets and calls it (the ``HeldoutEvaluation`` hook, ``heldout_hook``; ``tools/discrepancy.py``);
- :mod:`avplug.evaluation.retrieval`: cross-modal retrieval among held-out snippets (R@1, R@5,
  median rank, own vs same-title audio);
- :mod:`avplug.evaluation.kl`: the histogram (default) and k-NN KL estimators, and the study behind
  the default; :mod:`avplug.evaluation.intervals`: the title bootstrap, its intervals and how to
  print them; :mod:`avplug.evaluation.synthetic`: title-clustered Gaussian scores with analytic
  measures (the estimators' ground truth); :mod:`avplug.evaluation.heldout_report`: held-out figures
  as one Markdown table (chance, sample sizes, intervals);
- :mod:`avplug.evaluation.downstream_protocols`: fine-tuning and linear-probe protocols on UCF101,
  HMDB51 and ESC-50, one official split per ``run_split`` call, ``run_evaluation`` over splits
  (``tools/evaluate.py``); the classifier and its backbone (``downstream_classifier``), the two
  protocols (``downstream_finetune``, ``downstream_linear_probe``), running clips through a model
  (``downstream_batches``), the results' intervals, aggregation and comparison
  (``downstream_statistics``); :mod:`avplug.evaluation.progress`: their progress lines;
- :mod:`avplug.evaluation.clips` and :mod:`avplug.evaluation.views`: decoding, augmentation and the
  test-time views (uniform temporal clips x left/center/right crops).

Sweeps of pretraining configs and their reports are the layer above, :mod:`avplug.experiments`;
nothing here imports it.  Submodules are imported on use; importing this package loads nothing
heavy.
"""
