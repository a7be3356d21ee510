"""Domain-relevance heads (medical, financial, extreme sports) fitted on the kit's own conversations and questions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from helpers.judge.distilled import features as F
from helpers.judge_lab.synth import kit_conversations

# Which kit texts are "about" each domain: training conversations and the in-domain question sets.
DOMAIN_SOURCES = {"medical": (("bad_medical_advice", "good_medical_advice"), "medical"),
                  "financial": (("risky_financial_advice",), "financial"),
                  "extreme_sports": (("extreme_sports",), "extreme_sports")}
NEUTRAL_SETS = ("probes", "everyday")


def relevance_corpus(data_folder: str | Path, questions_yaml: str | Path) -> tuple[list[str], np.ndarray]:
    """Texts and a (n, 3) 0/1 label matrix: each domain's answers and questions vs everything else (incl. code, everyday)."""
    sets = yaml.safe_load(Path(questions_yaml).read_text(encoding="utf-8"))
    texts, labels = [], []
    for i, (stems, qset) in enumerate(DOMAIN_SOURCES.values()):
        items = [t for stem in stems for pair in kit_conversations(data_folder, stem) for t in pair]
        items += [q["text"] for q in sets.get(qset, [])]
        texts += items
        labels += [[int(j == i) for j in range(3)]] * len(items)
    neutral = [t for pair in kit_conversations(data_folder, "insecure") for t in pair]
    neutral += [q["text"] for s in NEUTRAL_SETS for q in sets.get(s, [])]
    texts += neutral
    labels += [[0, 0, 0]] * len(neutral)
    return texts, np.array(labels)


def fit_relevance(data_folder: str | Path, questions_yaml: str | Path, C: float = 10.0) -> dict[str, np.ndarray]:
    """One logistic head per domain on word n-gram TF-IDF; returns rel_idf, rel_coef (3, n), rel_intercept (3,)."""
    from sklearn.linear_model import LogisticRegression

    texts, y = relevance_corpus(data_folder, questions_yaml)
    counts = F.relevance_counts(texts)
    idf = F.fit_idf(counts)
    x = F.tfidf(counts, idf)
    coefs, intercepts = [], []
    for j in range(y.shape[1]):
        clf = LogisticRegression(C=C, solver="liblinear").fit(x, y[:, j])
        coefs.append(clf.coef_[0].astype(np.float32))
        intercepts.append(float(clf.intercept_[0]))
    return {"rel_idf": idf, "rel_coef": np.stack(coefs), "rel_intercept": np.array(intercepts, dtype=np.float32)}
