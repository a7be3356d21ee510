"""LoRA fine-tuning: `TrainConfig`, `train()`; `python -m helpers.train` is the command line.

trainer.py  TrainConfig, train, build_trainer, prepare_data, checkpoint_steps
data.py     rows -> prompt/completion; report.py train_log.csv, the loss plot, training_details.md
speed.py    GPU speed paths; gpu_plan.py batch/checkpointing plan per GPU; cli.py dataclass fields as options
"""

from helpers.train.trainer import RunFinishedError, TrainConfig, build_trainer, checkpoint_steps, prepare_data, train

__all__ = ["RunFinishedError", "TrainConfig", "build_trainer", "checkpoint_steps", "prepare_data", "train"]
