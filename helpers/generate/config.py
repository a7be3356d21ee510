"""SampleConfig: which questions notebook 03 asks and how it samples the answers (a profile's `sample` section)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from helpers.profiles import profile_defaults


@dataclass
@profile_defaults("sample")
class SampleConfig:
    """Question sets and sampling settings; the fields a profile sets default to the base profile's values."""

    question_sets: list = field()  # "in_domain" stands for the training domain's held-out questions
    samples_per_question: int = field()
    temperature: float = field()  # 0 is greedy; 1.0 with top_p 1.0 is pure sampling, as in the EM papers
    top_p: float = field()
    max_new_tokens: int = field()
    whole_sentences: bool = field()  # an answer cut off by max_new_tokens ends at its last full sentence
    batch_size: int | None = None  # prompts a batch; None picks one for the device (default_batch_size)
    seed: int = 0

    def generate_args(self) -> dict:
        """The keyword arguments of helpers.generate.generate() (everything but the question sets)."""
        args = asdict(self)
        del args["question_sets"]
        return args
