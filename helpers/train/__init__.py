"""LoRA fine-tuning: `TrainConfig`, `train()`; `python -m helpers.train` is the command line.

config.py      TrainConfig, TrainResult, RunFinishedError
trainer.py     train, build_trainer, prepare_data
run_folder.py  checkpoints (checkpoint_steps), resume or refuse, a finished run read back
speed.py       TrainSpeed: speed options for build_trainer, as plain data (helpers.gpu applies them on CUDA)
data.py        rows -> prompt/completion; report.py train_log.csv, the loss plot, training_details.md
cli.py         `python -m helpers.train` (HfArgumentParser over TrainConfig) and the field kinds widgets share
"""

from helpers.train.config import RunFinishedError, TrainConfig
from helpers.train.run_folder import checkpoint_steps
from helpers.train.speed import TrainSpeed
from helpers.train.trainer import build_trainer, prepare_data, train

__all__ = ["RunFinishedError", "TrainConfig", "TrainSpeed", "build_trainer", "checkpoint_steps", "prepare_data", "train"]
