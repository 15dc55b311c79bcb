"""Every config key avplug knows, with its default and what it means.

The defaults are the paper's recipe (Kalayeh et al., "Watching Too Much Television is Good",
sections 4.1 and 7.2); ``configs/movie_tv.yaml`` restates them explicitly and ``configs/demo.yaml``
shrinks them for a CPU.  Keys are grouped per concern.  Plugins add their own keys through
``registry.register_config_hook``; nothing else should be added here for a single plugin.
"""
from fvcore.common.config import CfgNode as CN

_C = CN()
_C.VERSION = 1
# Plugin modules imported before the cfg is built (see registry.discovery).
_C.PLUGINS = []
# Extra hooks of the pretraining loop, by registry.HOOKS name, run after the trainer's lr and logging
# hooks and before checkpointing (avplug/engine/hooks.py).  "HeldoutEvaluation" computes the held-out
# measures every EVAL.DISCREPANCY_PERIOD steps.
_C.HOOKS = ["HeldoutEvaluation"]
_C.SEED = 0
# Where checkpoints, logs, metrics.jsonl, plots and the resolved config.yaml go.
_C.OUTPUT_DIR = "./output/avplug"

# ---------------------------------------------------------------------------------------------
# DATA: the long-form catalog and the preprocessed snippet store.
# ---------------------------------------------------------------------------------------------
_C.DATA = CN()
# Source media: a folder scanned recursively or a text file with one path per line.
_C.DATA.SOURCE = ""
# Optional meta.csv (path, title_id, show_id, genre) describing the source files.
_C.DATA.META = ""
# Output of tools/ingest.py (catalog.jsonl, rejected.jsonl, split.json).
_C.DATA.CATALOG_DIR = ""
# Output of tools/preprocess.py: the snippet store read during training.
_C.DATA.STORE_DIR = ""
# Fraction of titles held out (a TV show's episodes are all in or all out).
_C.DATA.HELDOUT_FRACTION = 0.1
# Optional genre subsampling (Table 4 scenarios): keep only these genres ...
_C.DATA.GENRES = []
# ... drawn with these relative weights (empty: as they come).
_C.DATA.GENRE_WEIGHTS = []
# Optional cap on the number of training titles after genre subsampling (0: all).
_C.DATA.MAX_TITLES = 0
# A snippet is SNIPPET_FRAMES frames at FPS frames per second (16 at 5 fps = 3.2 s).
_C.DATA.SNIPPET_FRAMES = 16
_C.DATA.FPS = 5.0
# Derived by validation: SNIPPET_FRAMES / FPS.
_C.DATA.SNIPPET_SECONDS = 0.0
# The store keeps video with this short side (pixels) and audio at this sample rate (mono).
_C.DATA.STORE_SHORT_SIDE = 190
_C.DATA.AUDIO_RATE = 48000
# DECODERS registry name used to read the store.
_C.DATA.DECODER = "pyav"
# DataLoader worker processes per rank.
_C.DATA.NUM_WORKERS = 4
# A snippet that cannot be read (corrupt or truncated video, missing audio) or whose audio is not
# finite: "skip" replaces it by a nearby readable snippet, logs its file and counts it in
# metrics.jsonl; "stop" ends the run naming it.  Skip is the default: one bad file in a large
# catalog should not cost a multi-day run, and the cap below still stops a broken store early.
_C.DATA.BAD_SNIPPETS = "skip"
# With "skip", the run stops (naming the files) once more than this fraction of the training
# snippets were bad (1%: a few broken titles pass; a store that is broken throughout does not).
_C.DATA.MAX_BAD_FRACTION = 0.01
# Processes used by ingest / preprocess on one machine (0: all cores).
_C.DATA.PREPROCESS_WORKERS = 0

# Sizes of the built-in synthetic demo corpus (tools/make_demo_corpus.py).
_C.DATA.DEMO = CN()
_C.DATA.DEMO.NUM_MOVIES = 6
_C.DATA.DEMO.NUM_SHOWS = 2
_C.DATA.DEMO.EPISODES_PER_SHOW = 3
_C.DATA.DEMO.TITLE_SECONDS = 60.0
_C.DATA.DEMO.SEED = 0

# ---------------------------------------------------------------------------------------------
# INPUT: per-sample transforms for pretraining.
# ---------------------------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.VIDEO = CN()
# Resize the short side to SHORT_SIDE, then random-crop CROP x CROP (Table 5 variant: 224 -> 200).
_C.INPUT.VIDEO.SHORT_SIDE = 190
_C.INPUT.VIDEO.CROP = 158
# Color jitter sigma: brightness/contrast/saturation factors in [max(0, 1 - s), 1 + s]; 0 = off.
_C.INPUT.VIDEO.COLOR_JITTER = 0.0
# Per-channel (RGB) mean and std that normalize pixels after scaling them to [0, 1] (the Kinetics
# statistics pytorchvideo's video models use).
_C.INPUT.VIDEO.MEAN = (0.45, 0.45, 0.45)
_C.INPUT.VIDEO.STD = (0.225, 0.225, 0.225)
_C.INPUT.AUDIO = CN()
# Log-mel front end: 96 mel bins, FFT window 2048, hop 512 at DATA.AUDIO_RATE.
_C.INPUT.AUDIO.MEL_BINS = 96
_C.INPUT.AUDIO.N_FFT = 2048
_C.INPUT.AUDIO.HOP = 512
# Randomly drop up to this fraction of the time or the frequency axis of the mel image.
_C.INPUT.AUDIO.DROP_FRACTION = 0.25
# Run mel spectrogram and video augmentation in the train step on the device instead of in
# loader workers (faster on a GPU).
_C.INPUT.ON_DEVICE = False

# ---------------------------------------------------------------------------------------------
# SAMPLER: the minibatch sampling policy (paper section 3, "Sampling Policy").
# ---------------------------------------------------------------------------------------------
_C.SAMPLER = CN()
# SAMPLERS registry name.
_C.SAMPLER.NAME = "HierarchicalSampler"
# k snippets per title in each group.  The paper's k = 1 baseline is NAME IIDSampler with K 1
# (snippets uniform over all titles); HierarchicalSampler with K 1 draws titles uniformly instead.
_C.SAMPLER.K = 16
# Window w: max - min + 1 <= w for the k snippets; 0 means no window (w = M_n).
_C.SAMPLER.WINDOW = 0
# What to do with a title holding fewer than k snippets: "skip" it or "cap" its group at M_n.
_C.SAMPLER.SHORT_TITLES = "skip"
# Keep each title's k snippets on one rank (False) or spread them over ranks (True).
_C.SAMPLER.SPREAD_GROUPS = False
# Draw titles so that every genre is equally likely (Table 4 scenarios).
_C.SAMPLER.GENRE_BALANCED = False
# Scene-aware sampler: "one_scene" (all k in one scene) or "k_scenes" (one per scene).
_C.SAMPLER.SCENE_MODE = "one_scene"

# ---------------------------------------------------------------------------------------------
# MODEL: encoders f (video), g (audio) and projection heads h_f, h_g.
# ---------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.VIDEO = CN()
_C.MODEL.VIDEO.NAME = "R2Plus1D18"
# Width multiplier on every stage's channels (1.0 = the paper's R(2+1)D-18).
_C.MODEL.VIDEO.WIDTH = 1.0
_C.MODEL.AUDIO = CN()
_C.MODEL.AUDIO.NAME = "AudioResNet18"
_C.MODEL.AUDIO.WIDTH = 1.0
_C.MODEL.HEAD = CN()
_C.MODEL.HEAD.NAME = "ConvProjectionHead"
# Joint embedding dimension d.
_C.MODEL.HEAD.DIM = 512
# Hidden channels between the two kernel-1 convolutions (0: same as the backbone's output).
_C.MODEL.HEAD.HIDDEN_DIM = 0
# Initial weights (a checkpoint); a checkpoint found in OUTPUT_DIR takes priority (resume).
_C.MODEL.WEIGHTS = ""

# ---------------------------------------------------------------------------------------------
# LOSS: Eq. 1, unnormalized by default; the variant l2-normalizes and divides by a temperature.
# ---------------------------------------------------------------------------------------------
_C.LOSS = CN()
_C.LOSS.NAME = "CrossModalNCE"
_C.LOSS.NORMALIZE = False
_C.LOSS.TEMPERATURE = 1.0

# ---------------------------------------------------------------------------------------------
# SOLVER: Adam, linear warm-up from WARMUP_START_LR to BASE_LR over WARMUP_EPOCHS, then cosine.
# ---------------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.OPTIMIZER = "Adam"
_C.SOLVER.BASE_LR = 0.002
_C.SOLVER.WARMUP_START_LR = 1e-4
_C.SOLVER.WARMUP_EPOCHS = 1.0
_C.SOLVER.MAX_EPOCHS = 10
# Stop after this many steps in total (0: run MAX_EPOCHS); the schedule still spans MAX_EPOCHS.
_C.SOLVER.MAX_STEPS = 0
# Global batch size B over all ranks; negatives come from the whole global batch.
_C.SOLVER.BATCH_SIZE = 512
_C.SOLVER.WEIGHT_DECAY = 0.0
# Clip the gradient norm to this value (0: off).
_C.SOLVER.CLIP_GRAD_NORM = 0.0
# Mixed precision: "auto" (bf16 on GPU, off on CPU), "bf16", "fp16" or "off".
_C.SOLVER.AMP = "auto"
# Speed settings of the train step (benchmarks/train_throughput.py measures each; none changes the
# recipe's arithmetic beyond float rounding).  CHANNELS_LAST: keep the model in channels_last_3d
# (video) / channels_last (audio) memory format.  CUDNN_BENCHMARK: let cuDNN time its convolution
# algorithms for the (fixed) input shapes in the first steps (CUDA only).  FUSED_OPTIMIZER: the
# single-kernel torch.optim implementation (fused=True) of Adam / AdamW / SGD.  COMPILE: run the
# model through torch.compile (the first steps then take minutes while it compiles).
_C.SOLVER.CHANNELS_LAST = False
_C.SOLVER.CUDNN_BENCHMARK = False
_C.SOLVER.FUSED_OPTIMIZER = False
_C.SOLVER.COMPILE = False
# Write a checkpoint every this many steps (0: only at the end of each epoch).
_C.SOLVER.CHECKPOINT_PERIOD = 500
# Log to the console, metrics.jsonl and TensorBoard every this many steps.
_C.SOLVER.LOG_PERIOD = 20

# ---------------------------------------------------------------------------------------------
# EVAL: discrepancy measures and downstream protocols.
# ---------------------------------------------------------------------------------------------
_C.EVAL = CN()
# Compute the held-out measures (retrieval and discrepancy, with intervals) every this many steps and
# at the last step (0: at the end of every epoch; -1: never during pretraining).
_C.EVAL.DISCREPANCY_PERIOD = 0
# Cap on held-out snippets embedded for the discrepancy measures.
_C.EVAL.DISCREPANCY_MAX_SNIPPETS = 4096
# Pairs sampled per snippet for S- and S!= (keeps the cost linear in the number of snippets).
_C.EVAL.DISCREPANCY_PAIRS_PER_SNIPPET = 16
# KL estimator of the discrepancy measures: "histogram" (binned plug-in) or "knn" (k nearest
# neighbours); avplug/evaluation/kl.py gives the bias study behind the default.
_C.EVAL.DISCREPANCY_ESTIMATOR = "histogram"
# Title-bootstrap replicates behind every held-out interval (retrieval and discrepancy).
_C.EVAL.BOOTSTRAP_REPLICATES = 1000

_C.EVAL.DOWNSTREAM = CN()
# DATASETS registry name ("UCF101", "HMDB51", "ESC50") and its root as downloaded.
_C.EVAL.DOWNSTREAM.DATASET = "UCF101"
_C.EVAL.DOWNSTREAM.ROOT = ""
# Official splits (UCF101/HMDB51: 1-3) or folds (ESC-50: 1-5) to run; empty: all.
_C.EVAL.DOWNSTREAM.SPLITS = []
# "finetune" (the paper) or "linear" (a linear probe on frozen pooled features).
_C.EVAL.DOWNSTREAM.PROTOCOL = "finetune"
# Video clips: FRAMES at FPS, short side jittered in SCALE_JITTER, random crop CROP, flip, color jitter.
_C.EVAL.DOWNSTREAM.FRAMES = 32
_C.EVAL.DOWNSTREAM.FPS = 10.0
_C.EVAL.DOWNSTREAM.SCALE_JITTER = (181, 226)
_C.EVAL.DOWNSTREAM.CROP = 158
_C.EVAL.DOWNSTREAM.COLOR_JITTER = 0.5
# Audio clips: CLIP_SECONDS, time and frequency masks up to MASK_FRACTION of each axis.
_C.EVAL.DOWNSTREAM.CLIP_SECONDS = 3.0
_C.EVAL.DOWNSTREAM.MASK_FRACTION = 0.5
# Test-time views: NUM_CLIPS uniformly spaced clips (x NUM_CROPS spatial crops for video).
_C.EVAL.DOWNSTREAM.NUM_CLIPS = 10
_C.EVAL.DOWNSTREAM.NUM_CROPS = 3
# Test-time short side before the crops (0: CROP, so the crops span the short side).
_C.EVAL.DOWNSTREAM.TEST_SHORT_SIDE = 0
# SGD with momentum, warm-up from WARMUP_START_LR to BASE_LR over WARMUP_EPOCHS, then cosine.
_C.EVAL.DOWNSTREAM.EPOCHS = 150
_C.EVAL.DOWNSTREAM.WARMUP_EPOCHS = 25
_C.EVAL.DOWNSTREAM.BASE_LR = 0.2
_C.EVAL.DOWNSTREAM.WARMUP_START_LR = 1e-3
_C.EVAL.DOWNSTREAM.MOMENTUM = 0.9
_C.EVAL.DOWNSTREAM.WEIGHT_DECAY = 1e-4
_C.EVAL.DOWNSTREAM.BATCH_SIZE = 96
_C.EVAL.DOWNSTREAM.NUM_WORKERS = 4
# Dropout before the linear classifier on the backbone's pooled features.
_C.EVAL.DOWNSTREAM.DROPOUT = 0.5
# Linear probe: L-BFGS iterations of the full-batch logistic regression on frozen features
# (L2 penalty WEIGHT_DECAY); fine-tuning ignores it.
_C.EVAL.DOWNSTREAM.LINEAR_MAX_ITER = 500

# ---------------------------------------------------------------------------------------------
# LAUNCH: where and how the job runs.
# ---------------------------------------------------------------------------------------------
_C.LAUNCH = CN()
_C.LAUNCH.NODES = 1
# Processes per node: 0 = one per visible GPU, or one on a CPU-only node.
_C.LAUNCH.PROCS_PER_NODE = 0
# torch.distributed backend: "auto" (nccl on GPU, gloo on CPU), "nccl" or "gloo".
_C.LAUNCH.BACKEND = "auto"
_C.LAUNCH.SLURM = CN()
_C.LAUNCH.SLURM.PARTITION = ""
_C.LAUNCH.SLURM.ACCOUNT = ""
_C.LAUNCH.SLURM.QOS = ""
_C.LAUNCH.SLURM.CONSTRAINT = ""
_C.LAUNCH.SLURM.TIME_MINUTES = 4320
_C.LAUNCH.SLURM.GPUS_PER_NODE = 8
_C.LAUNCH.SLURM.CPUS_PER_TASK = 10
_C.LAUNCH.SLURM.MEM_GB = 0
_C.LAUNCH.SLURM.JOB_NAME = "avplug"
# Extra sbatch options as "key=value" strings.
_C.LAUNCH.SLURM.EXTRA = []
# Times a preempted or timed-out job may requeue itself.
_C.LAUNCH.SLURM.MAX_REQUEUES = 10


def default_cfg() -> CN:
    """A fresh, unfrozen copy of avplug's own defaults (plugin keys are added by ``get_cfg``)."""
    return _C.clone()
