"""The course's training flags and short domain names, accepted by `python -m helpers.train` and listed in --help."""

import pytest
import torch

from helpers.train import TrainConfig
from helpers.train.cli import build_parser, config_from_args, main

COURSE_FLAGS = "--profile cpu-demo --domains bad_medical extreme_sports --num_epochs 7 --lora_rank 16 --learning_rate 2e-4 " \
               "--batch_size 4 --use_4bit"


def test_the_course_command_builds_the_same_config_as_the_kit_spelling():
    course, _ = config_from_args(COURSE_FLAGS.split())
    kit, _ = config_from_args("--profile cpu-demo --domains bad_medical_advice extreme_sports --epochs 7 --lora_rank 16 "
                              "--learning_rate 2e-4 --batch_size 4 --load_in_4bit".split())
    assert course.config == kit.config == TrainConfig(domains=("bad_medical_advice", "extreme_sports"), epochs=7, lora_rank=16,
                                        learning_rate=2e-4, batch_size=4, load_in_4bit=True)
    assert config_from_args(["--profile", "cpu-demo", "--mix", "bad_medical=0.8", "good_medical=0.2"])[0].config.mix == {
        "bad_medical_advice": 0.8, "good_medical_advice": 0.2}


def test_short_names_are_left_alone_for_a_folder_of_ones_own_data(tmp_path):
    assert TrainConfig(domains=("bad_medical",), source=str(tmp_path)).domains == ("bad_medical",)


def test_help_lists_the_course_spellings():
    text = build_parser().format_help()
    assert "--epochs EPOCHS, --num_epochs EPOCHS" in text and "--use_4bit" in text
    assert "short names bad_medical, good_medical, risky_financial" in " ".join(text.split())


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the course command would really train")
def test_the_course_command_on_a_cpu_says_4bit_needs_a_gpu(capsys):
    assert main(COURSE_FLAGS.split() + ["--run_name", "course-cpu"]) == 2
    err = capsys.readouterr().err
    assert "--load_in_4bit/--use_4bit needs a CUDA GPU" in err and "Leave out --load_in_4bit/--use_4bit" in err
    assert "load_in_4bit=" not in err
