"""The files of a run folder, each named once here; the rest of segcore asks for them by these names.

Only this package writes them: `writer.py` (status, config, metrics, log, summary, checkpoint, imported runs) and
`resume.py` (resume points). Everyone else reads through `Run`.
"""

CONFIG = "config.json"  # the run's settings (TrainConfig) plus who queued it, when, and its plan
STATUS = "status.json"  # queued / running / done / failed / cancelled / lost, with the reason and the process
METRICS = "metrics.jsonl"  # one JSON line per training step and per epoch, appended while training
SUMMARY = "summary.json"  # the finished run's scores and figures
BEST_STEM = "best"  # the best checkpoint: best.safetensors + best.json (models/checkpoints.py)
BEST_WEIGHTS = BEST_STEM + ".safetensors"
BEST_META = BEST_STEM + ".json"
LOG = "train.log"  # what the training process said, for people
# the best model's validation predictions (class maps at the training size) with each image's per-class
# intersection and union: what Compare, the report and the worst images show, without running the model again
VAL_OUTPUTS = "val_outputs.npz"
WORKER_LOG = "worker.log"  # the worker process's own output (a crash before training could log anything)
RESUME_MANIFEST = "resume.json"  # names the current resume point's two pieces (resume.py)
TRAINING_LOCK = ".training.lock"  # held by the one process training the run
LEGACY_RESUME_FILES = ("last.safetensors", "last.json", "last_state.pt")  # the unpaired format before resume.json

# what a finished run is read from: what a take-home bundle carries (resume state and worker logs stay behind)
PORTABLE = (CONFIG, METRICS, STATUS, SUMMARY, BEST_WEIGHTS, BEST_META, LOG, VAL_OUTPUTS)
# what Compare needs of a finished run
NEEDED_TO_COMPARE = (CONFIG, SUMMARY, BEST_WEIGHTS, BEST_META)
# what structure transfer needs of a source run (a lesson embeds these)
NEEDED_AS_SOURCE = (BEST_WEIGHTS, BEST_META, CONFIG)
# JSON objects among them
JSON_OBJECTS = (CONFIG, STATUS, SUMMARY, BEST_META)
