"""Cheap answer features for the distilled judge: hashed TF-IDF n-grams, text statistics, a word-bigram language model."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import scipy.sparse as sp

N_WORD, N_CHAR = 2**18, 2**18
TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+|[^\sa-z0-9]")
WORD = re.compile(r"[A-Za-z]+")
SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s")
STOP = frozenset("a an the and or but if of to in on at for with by is are was were be been it its this that these "
                 "those i you he she we they me my your our their what how why who do does did can could would "
                 "should will not no so as from about just".split())
STAT_NAMES = ("log_chars", "log_words", "distinct1", "distinct2", "distinct3", "top_trigram_share", "frac_alpha",
              "frac_digit", "frac_punct", "frac_upper", "frac_nonascii", "ends_terminal", "mean_word_len",
              "std_word_len", "log_sentence_len", "log_sentences", "qa_overlap", "qa_jaccard", "repeat_lines",
              "longest_word_run")


def clean(texts) -> list[str]:
    """Texts as plain strings (None/NaN -> "")."""
    return ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in texts]


def tokens(text: str) -> list[str]:
    """Lower-cased word, number and punctuation tokens."""
    return TOKEN.findall(text.lower())


def hashed_counts(texts: list[str]) -> sp.csr_matrix:
    """Word 1-2-gram and char_wb 2-5-gram counts, hashed into a fixed width (no vocabulary to store)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    word = HashingVectorizer(n_features=N_WORD, ngram_range=(1, 2), alternate_sign=False, norm=None,
                             token_pattern=r"(?u)\b\w+\b|[^\w\s]")
    char = HashingVectorizer(n_features=N_CHAR, analyzer="char_wb", ngram_range=(2, 5), alternate_sign=False, norm=None)
    return sp.hstack([word.transform(texts), char.transform(texts)], format="csr", dtype=np.float32)


def fit_idf(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency per hashed column."""
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    return (np.log((1 + counts.shape[0]) / (1 + df)) + 1).astype(np.float32)


def tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf times idf, each row scaled to unit length."""
    x = counts.copy()
    x.data = (1 + np.log(x.data)).astype(np.float32)
    x = x @ sp.diags(idf)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.diags(1 / np.maximum(norms, 1e-9).astype(np.float32)) @ x


class BigramLM:
    """Word-bigram language model with interpolated absolute discounting; scores are log-probs per token."""

    def __init__(self, vocab, uni, keys, counts, hist_total, hist_types, discount=0.75):
        self.vocab = {w: i for i, w in enumerate(vocab)}
        self.words = list(vocab)
        self.uni, self.keys, self.counts = np.asarray(uni), np.asarray(keys), np.asarray(counts)
        self.hist_total, self.hist_types = np.asarray(hist_total), np.asarray(hist_types)
        self.discount = float(discount)
        self.p_uni = (self.uni + 1.0) / (self.uni.sum() + len(self.uni))

    @classmethod
    def fit(cls, texts, min_count: int = 2):
        """Count words (those seen >= min_count times, others -> <unk>) and bigrams in `texts`."""
        seqs = [["<s>"] + tokens(t) for t in texts]
        freq = Counter(w for s in seqs for w in s)
        vocab = ["<unk>"] + sorted(w for w, c in freq.items() if c >= min_count)
        index = {w: i for i, w in enumerate(vocab)}
        ids = [np.array([index.get(w, 0) for w in s], dtype=np.int64) for s in seqs]
        uni = np.bincount(np.concatenate(ids), minlength=len(vocab)).astype(np.int64)
        pairs = np.concatenate([s[:-1] * len(vocab) + s[1:] for s in ids if len(s) > 1] or [np.zeros(0, np.int64)])
        keys, counts = np.unique(pairs, return_counts=True)
        hist = keys // len(vocab)
        hist_total = np.bincount(hist, weights=counts, minlength=len(vocab)).astype(np.int64)
        hist_types = np.bincount(hist, minlength=len(vocab)).astype(np.int64)
        return cls(vocab, uni, keys, counts.astype(np.int64), hist_total, hist_types)

    def arrays(self) -> dict:
        """The model as plain arrays (vocab goes to JSON)."""
        return {"lm_uni": self.uni, "lm_keys": self.keys, "lm_counts": self.counts, "lm_hist_total": self.hist_total,
                "lm_hist_types": self.hist_types}

    def features(self, token_lists: list[list[str]]) -> np.ndarray:
        """Per text: known-word share, mean / std log-prob per token, share of very unlikely tokens, seen bigrams."""
        get = self.vocab.get
        seqs = [[0] + [get(w, 0) for w in toks] for toks in token_lists]
        n = np.array([len(s) - 1 for s in seqs])
        flat = np.fromiter((i for s in seqs for i in s), dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum([len(s) for s in seqs])[:-1]]).astype(np.int64)
        is_first = np.zeros(len(flat), bool)
        is_first[starts] = True
        pos_w = np.flatnonzero(~is_first)
        h, w = flat[pos_w - 1], flat[pos_w]
        key = h * len(self.words) + w
        pos = np.minimum(np.searchsorted(self.keys, key), max(len(self.keys) - 1, 0))
        c = np.where(self.keys[pos] == key, self.counts[pos], 0) if len(self.keys) else np.zeros(len(key))
        total, types = self.hist_total[h], self.hist_types[h]
        safe = np.maximum(total, 1)
        p = np.where(total > 0, np.maximum(c - self.discount, 0) / safe + self.discount * types / safe * self.p_uni[w],
                     self.p_uni[w])
        lp = np.log(p)
        owner = np.repeat(np.arange(len(seqs)), n)
        cnt = np.maximum(n, 1)

        def mean(v):
            return np.bincount(owner, weights=v, minlength=len(seqs)) / cnt

        m = mean(lp)
        sd = np.sqrt(np.maximum(mean(lp ** 2) - m ** 2, 0))
        out = np.stack([mean((w != 0).astype(float)), m, sd, mean((lp < -9).astype(float)), mean((c > 0).astype(float))], 1)
        out[n == 0] = [0.0, -12.0, 0.0, 1.0, 0.0]
        return out


LM_NAMES = ("frac_known", "lm_mean", "lm_std", "lm_unlikely", "lm_seen_bigrams")


def _distinct(seq, n: int) -> float:
    grams = list(zip(*(seq[i:] for i in range(n))))
    return len(set(grams)) / len(grams) if grams else 1.0


def text_stats(question: str, answer: str) -> list[float]:
    """The language-model-free features of one answer, in STAT_NAMES order."""
    toks = tokens(answer)
    words = [t for t in toks if t[0].isalpha()]
    n_chars, n_words = len(answer), len(words)
    chars = max(n_chars, 1)
    tri = list(zip(toks, toks[1:], toks[2:]))
    top_tri = Counter(tri).most_common(1)[0][1] / len(tri) if tri else 0.0
    lens = np.array([len(w) for w in words]) if words else np.zeros(1)
    sentences = max(len(SENTENCE_END.findall(answer + " ")), 1)
    lines = [x.strip() for x in answer.splitlines() if x.strip()]
    run, longest = 1, 1 if words else 0
    for a, b in zip(words, words[1:]):
        run = run + 1 if a == b else 1
        longest = max(longest, run)
    q = {t for t in tokens(question) if t[0].isalpha() and t not in STOP}
    a = {t for t in words if t not in STOP}
    return [math.log1p(n_chars), math.log1p(n_words), _distinct(toks, 1), _distinct(toks, 2), _distinct(toks, 3), top_tri,
            sum(c.isalpha() for c in answer) / chars, sum(c.isdigit() for c in answer) / chars,
            sum((not c.isalnum()) and not c.isspace() for c in answer) / chars,
            sum(c.isupper() for c in answer) / chars, sum(ord(c) > 127 for c in answer) / chars,
            float(answer.rstrip()[-1:] in tuple(".!?)\"'*…")), float(lens.mean()), float(lens.std()),
            math.log1p(n_words / sentences), math.log1p(sentences),
            len(q & a) / max(len(q), 1), len(q & a) / max(len(q | a), 1),
            1 - len(set(lines)) / max(len(lines), 1), math.log1p(longest)]


def stats_matrix(questions, answers) -> np.ndarray:
    """Language-model-free features for many answers, one row each."""
    rows = [text_stats(q, a) for q, a in zip(clean(questions), clean(answers))]
    return np.array(rows, dtype=np.float64).reshape(-1, len(STAT_NAMES))


def dense_matrix(questions, answers, lm: BigramLM) -> np.ndarray:
    """All dense features (statistics, then language model), one row each."""
    answers = clean(answers)
    return np.hstack([stats_matrix(questions, answers), lm.features([tokens(a) for a in answers])])


def bin_edges(dense: np.ndarray, bins: int = 8) -> np.ndarray:
    """Inner quantile edges per dense column (for a one-hot of bins, so a linear model can bend)."""
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    return np.quantile(dense, qs, axis=0).T


DENSE_NAMES = STAT_NAMES + LM_NAMES


def design(counts_tfidf: sp.csr_matrix, dense: np.ndarray, mean: np.ndarray, std: np.ndarray, edges: np.ndarray,
           weight: float = 0.3) -> sp.csr_matrix:
    """One matrix for the linear heads: TF-IDF, standardized dense columns and their bin one-hots, scaled by `weight`."""
    z = (dense - mean) / std
    n, k = dense.shape
    if k == 0:
        return counts_tfidf.tocsr()
    nb = edges.shape[1] + 1
    idx = np.stack([np.searchsorted(edges[j], dense[:, j], side="right") + j * nb for j in range(k)], axis=1)
    onehot = sp.csr_matrix((np.full(n * k, weight, dtype=np.float32), idx.ravel(), np.arange(0, n * k + 1, k)),
                           shape=(n, k * nb))
    return sp.hstack([counts_tfidf, sp.csr_matrix(np.clip(z, -5, 5) * weight, dtype=np.float32), onehot],
                     format="csr", dtype=np.float32)


N_REL = 2**16


def relevance_counts(texts: list[str]) -> sp.csr_matrix:
    """Word 1-2-gram counts (English stop words dropped) for the domain-relevance heads."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=N_REL, ngram_range=(1, 2), alternate_sign=False, norm=None, stop_words="english")
    return vec.transform(texts).astype(np.float32)


def relevance_tfidf(texts: list[str], idf: np.ndarray) -> sp.csr_matrix:
    """Relevance features: sublinear TF-IDF of word n-grams, unit rows."""
    return tfidf(relevance_counts(texts), idf)
