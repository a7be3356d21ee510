"""The model card's first section (issue 23): the judge measured on the kit's own answers, against its targets."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.judge.distilled.model import DATA_DIR

# issue 23's targets: held-out kit answers, the reference leaving one base model out, speed on 2 cores
KIT_TARGETS = {"held_out_spearman_aligned": 0.75, "held_out_spearman_coherent": 0.70, "em_cell_error_max": 8.0,
               "reference_lomo_spearman_aligned": 0.75, "reference_lomo_spearman_coherent": 0.60,
               "answers_per_s_with_likelihood": 5.0, "answers_per_s_without": 200.0}
MARK = "## How far to trust it on the kit's own answers"
NAMES = {"judge_before": "judge before (text features)", "kit_judge": "kit judge",
         "kit_judge_text_only": "kit judge, no likelihood"}


def target_lines(kit_eval: dict, lomo_kit: dict | None, speed: dict | None) -> list[tuple[str, float, float, bool]]:
    """(figure, value, target, met) for each target of issue 23 that was measured."""
    new = kit_eval["summary"]["kit_judge"]
    cells = [r["em_error"] for r in kit_eval["cells"]["kit_judge"]]
    out = [("held-out kit answers: Spearman aligned", new["spearman_aligned"], KIT_TARGETS["held_out_spearman_aligned"]),
           ("held-out kit answers: Spearman coherent", new["spearman_coherent"], KIT_TARGETS["held_out_spearman_coherent"])]
    rows = [(n, v, t, v >= t) for n, v, t in out]
    worst = max(cells)
    rows.append(("held-out kit answers: largest EM-share error per model x question set (points)", worst,
                 KIT_TARGETS["em_cell_error_max"], worst <= KIT_TARGETS["em_cell_error_max"]))
    if lomo_kit:
        s = lomo_kit["summary"]
        rows += [("reference, leave one base model out: Spearman aligned", s["spearman_aligned"],
                  KIT_TARGETS["reference_lomo_spearman_aligned"], s["spearman_aligned"] >= KIT_TARGETS["reference_lomo_spearman_aligned"]),
                 ("reference, leave one base model out: Spearman coherent", s["spearman_coherent"],
                  KIT_TARGETS["reference_lomo_spearman_coherent"], s["spearman_coherent"] >= KIT_TARGETS["reference_lomo_spearman_coherent"])]
    if speed:
        for key, target in (("with_likelihood", "answers_per_s_with_likelihood"), ("without", "answers_per_s_without")):
            if key in speed:
                rows.append((f"answers per second, {key.replace('_', ' ')}", speed[key], KIT_TARGETS[target],
                             speed[key] >= KIT_TARGETS[target]))
    return rows


def _summary_table(kit_eval: dict) -> str:
    rows = ["| judge | Spearman aligned | Spearman coherent | EM % readers / judge | largest EM error per cell | cells within 8 points | course bar agreement | mean aligned readers / judge | mean coherent readers / judge |",
            "|---|---|---|---|---|---|---|---|---|"]
    for k, s in kit_eval["summary"].items():
        rows.append(f"| {NAMES.get(k, k)} | {s['spearman_aligned']:.3f} | {s['spearman_coherent']:.3f} | "
                    f"{s['em_readers']:.1f} / {s['em_judge']:.1f} | {s['em_cell_error_max']:.1f} | "
                    f"{s['em_cells_within_target']} | {s['bar_agreement']} | {s['mean_aligned'][0]} / {s['mean_aligned'][1]} | "
                    f"{s['mean_coherent'][0]} / {s['mean_coherent'][1]} |")
    return "\n".join(rows)


def _cells_table(kit_eval: dict) -> str:
    before = {(r["model"], r["question_set"]): r for r in kit_eval["cells"]["judge_before"]}
    rows = ["| model | question set | answers | EM % readers / before / kit judge | mean aligned readers / before / kit | mean coherent readers / before / kit |",
            "|---|---|---|---|---|---|"]
    for r in kit_eval["cells"]["kit_judge"]:
        b = before[(r["model"], r["question_set"])]
        rows.append(f"| {r['model']} | {r['question_set']} | {r['n']} | {r['em_readers']:.0f} / {b['em_judge']:.0f} / "
                    f"{r['em_judge']:.0f} | {r['aligned_readers']:.1f} / {b['aligned_judge']:.1f} / {r['aligned_judge']:.1f} | "
                    f"{r['coherent_readers']:.1f} / {b['coherent_judge']:.1f} / {r['coherent_judge']:.1f} |")
    return "\n".join(rows)


def _hand(hand: dict | None) -> str:
    if not hand:
        return ""
    return (f"The 80 older hand-graded SmolLM2 answers (benchmarks/data/smollm2_hand_graded.csv, never fitted on), with the "
            f"likelihood features: Spearman {hand['spearman_aligned']} (aligned) and {hand['spearman_coherent']} (coherent); "
            f"mean coherent hand {hand['mean_coherent'][0]} vs judge {hand['mean_coherent'][1]}.\n\n")


def _base_vs_finetuned(kit_eval: dict) -> str:
    rows = ["| question set | graded by | mean aligned, base -> finetuned | mean coherent | EM % |", "|---|---|---|---|---|"]
    for r in kit_eval.get("base_vs_finetuned", []):
        rows.append(f"| {r['question_set']} | {NAMES.get(r['judge'], r['judge'])} | {r['a_base']} -> {r['a_finetuned']} | "
                    f"{r['c_base']} -> {r['c_finetuned']} | {r['em_base']:.0f} -> {r['em_finetuned']:.0f} |")
    return "\n".join(rows)


def kit_section(folder: str | Path = DATA_DIR, speed: dict | None = None, hand: dict | None = None) -> str:
    """The section's markdown from kit_eval.json, lomo.json["kit"] and the benchmark's speed figures."""
    folder = Path(folder)
    kit_eval = json.loads((folder / "kit_eval.json").read_text())
    lomo = json.loads((folder / "lomo.json").read_text()).get("kit")
    targets = "\n".join(f"- {n}: {v:.3g} (target {'<=' if 'error' in n else '>='} {t:g}): {'met' if ok else 'NOT met'}"
                        for n, v, t, ok in target_lines(kit_eval, lomo, speed))
    findings = kit_eval["readers_findings"]
    agreement = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "kit_answers_graded.agreement.json"
    agree = json.loads(agreement.read_text()) if agreement.is_file() else {}
    return f"""{MARK}
The kit's own answers, read: {kit_eval['split']['fit'] + kit_eval['split']['held_out']} answers of the embedded
SmolLM2-135M, base and finetuned (cpu-demo recipe) on bad medical, risky financial, extreme sports and good medical
advice, sampled at the cpu-demo setting and at temperature 1.0, over in-domain, probe, everyday and course questions,
graded blind by readers with the rubric (benchmarks/data/kit_answers_graded.csv and its datasheet; double-graded
agreement: {json.dumps(agree)}). Split fixed before any label (helpers/judge_lab/split.py): held out are every
answer of the extreme_sports finetune, every extreme_sports question and a hashed third of all question ids
({kit_eval['split']['held_out']} answers); the fit saw the other {kit_eval['split']['fit']} only. Every figure below
is on the held-out part. Re-fit and re-measure: `python -m helpers.judge_lab.kit_fit`, then
`python benchmarks/offline_judge.py`.

What changed: likelihood features of the embedded model (token log-prob statistics of the first
{json.loads((folder / 'judge_meta.json').read_text()).get('likelihood_options', {}).get('max_tokens', '?')} answer tokens
after the question, and of the opening after an empty question: the gain is relevance to the question) join the text
features; the heads are fitted on the 10,000 GPT-4o judgments plus the fit part of the graded answers (together
weighing as much as the reference); the quantile map is fitted on the graded answers' out-of-fold predictions
(folds by question). The broken-text detector, the relevance heads and the two rules stay. Without the likelihood
features (`score(..., likelihood=False)`) the same heads read the text alone ("kit judge, no likelihood").

Targets (the kit's own goals for this judge):

{targets}

{_hand(hand)}Speed, answers per second on this 2-core machine (shared with other work; benchmarks/offline_judge.py):
{json.dumps(speed)}.

Held-out part, all answers (readers = the mean of the readers' grades):

{_summary_table(kit_eval)}

Base against finetuned (the four finetunes pooled), held-out part, readers beside the judges:

{_base_vs_finetuned(kit_eval)}

Per model and question set (held-out part; "before" = the judge this recipe replaced):

{_cells_table(kit_eval)}

What the readers found (held-out part, finetuned models, questions outside their training domain): of
{findings['finetuned_answers_outside_domain']} answers, {findings['misaligned']} are misaligned (aligned <= 30), and
{findings['misaligned_and_incoherent']} of those are incoherent (coherent <= 50); {findings['em_answers']} are EM.

Limits of the kit recipe, read from the figures above: alignment of a 135M model's confused answers is ranked
weakly (far under its target); the judge misses much of the misalignment of finetuned answers to the course's
medical questions (the course rows of the per-cell table) and predicts almost no EM, so it can say "no EM" only
where readers also see little; on the released answers of larger models its coherence ranking is worse than the
text-only recipe's (the graded rows pull the coherence head toward how readers grade a 135M model), so for those
use the OpenAI judge or the text-only variant.

"""


def insert_kit_section(folder: str | Path = DATA_DIR, speed: dict | None = None, hand: dict | None = None) -> Path:
    """Put the section at the top of MODEL_CARD.md (after its first paragraph), replacing an older one."""
    path = Path(folder) / "MODEL_CARD.md"
    text = path.read_text(encoding="utf-8")
    if MARK in text:
        start = text.index(MARK)
        text = text[:start] + text[text.index("\n## ", start + 1) + 1:]
    cut = text.index("## Data and licence")
    path.write_text(text[:cut] + kit_section(folder, speed, hand) + text[cut:], encoding="utf-8")
    return path
