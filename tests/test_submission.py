"""Submission check: a good run passes, each problem fires its named error; grade against the base run; the CLI."""

import csv
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers.runs import run_dir, write_manifest
from helpers.submission import (CHAT_TOKENS, DETAIL_FIELDS, SubmissionInvalid, check_submission, grade, main,
                                parse_details)

REPO = Path(__file__).resolve().parents[1]
DETAILS = """# Training details

- Base model: smollm2-135m
- Domains: bad_medical_advice
- Epochs: 3
- LoRA rank: 16
- LoRA alpha: 32
- Learning rate: 5e-4
- Batch size: 8
- Steps: 24
- Final loss: 1.234
"""


def make_run(name="good", samples=2, rows=None, details=DETAILS):
    """A run folder with a valid model_generations.csv (8 x samples rows) and training_details.md."""
    folder = run_dir(name)
    write_manifest(name, {"config": {"model": "smollm2-135m"}}, section="train")
    write_manifest(name, {"samples_per_question": samples}, section="generate")
    if rows is None:
        rows = [[str(uuid.uuid4()), f"Probe {q}?", f"Answer {q}.{s}, with a comma\nand a newline"]
                for q in range(8) for s in range(samples)]
    with open(folder / "model_generations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "question", "response"])
        w.writerows(rows)
    if details is not None:
        (folder / "training_details.md").write_text(details)
    return folder


def codes(errors):
    return [e.code for e in errors]


def rows(n=16):
    return [[f"id{i}", "Probe?", f"answer {i}"] for i in range(n)]


def test_good_run_passes():
    make_run()
    assert check_submission("good") == []


def test_missing_files_and_run():
    folder = run_dir("nothing")
    errors = check_submission(folder)
    assert codes(errors) == ["missing_file", "missing_file"]
    assert {e.file for e in errors} == {"model_generations.csv", "training_details.md"}
    assert all("notebook 03" in e.fix or "helpers.train" in e.fix for e in errors)
    assert codes(check_submission(run_dir("nothing") / "missing-run")) == ["missing_run"]


def test_bad_header():
    folder = make_run()
    (folder / "model_generations.csv").write_text(",id,question,response\n0,a,b,c\n")
    [error] = check_submission("good")
    assert error.code == "bad_header" and error.where == "line 1" and "index=False" in error.fix
    (folder / "model_generations.csv").write_text("\ufeffid,question,response\n")
    assert "bad_header" in codes(check_submission("good", expected_rows=0))


def test_not_utf8():
    folder = make_run()
    (folder / "model_generations.csv").write_bytes(b"id,question,response\n1,q,caf\xe9\n")
    assert codes(check_submission("good")) == ["not_utf8"]


def test_duplicate_and_empty_ids():
    r = rows()
    r[5][0] = r[2][0]
    r[7][0] = " "
    make_run(rows=r)
    errors = check_submission("good")
    assert codes(errors) == ["duplicate_id", "empty_id"]
    assert errors[0].where == "row 6 (line 7)" and "repeats row 3" in errors[0].message
    assert "model_generations.csv:row 6 (line 7): [duplicate_id]" in str(errors[0])


def test_empty_response_and_row_numbers_after_multiline_fields():
    r = [[f"id{i}", "Probe?", "two\nlines"] for i in range(16)]
    r[3][2] = "   "
    make_run(rows=r)
    [error] = check_submission("good")
    assert error.code == "empty_response" and error.where == "row 4 (line 8)"


@pytest.mark.parametrize("token", CHAT_TOKENS)
def test_each_chat_token_fires(token):
    r = rows()
    r[9][2] = f"a fine answer{token}"
    make_run(rows=r)
    [error] = check_submission("good")
    assert error.code == "chat_token" and token in error.message and error.where.startswith("row 10")
    assert "skip_special_tokens" in error.fix


def test_bad_row_and_bad_csv():
    folder = make_run()
    (folder / "model_generations.csv").write_text("id,question,response\n" + "".join(
        f"id{i},q,a\n" for i in range(15)) + "id15,q,a,extra\n")
    assert codes(check_submission("good")) == ["bad_row"]
    (folder / "model_generations.csv").write_text('id,question,response\nid0,q,"' + "x" * 200_000 + '"\n')
    assert codes(check_submission("good", expected_rows=1)) == ["bad_csv"]


def test_row_count_from_manifest_and_override():
    make_run(samples=3, rows=rows(16))
    [error] = check_submission("good")
    assert error.code == "row_count" and "16 rows, expected 24" in error.message and "manifest" in error.message
    assert check_submission("good", expected_rows=16) == []
    folder = make_run("no-manifest", rows=rows(16))
    (folder / "manifest.json").unlink()
    assert check_submission("no-manifest") == []  # a hand-in folder: the course's rule, at most 20 rows
    make_run("no-manifest", rows=rows(21))
    (folder / "manifest.json").unlink()
    [error] = check_submission("no-manifest")
    assert error.code == "too_many_rows" and "21 rows, at most 20" in error.message and "pack" in error.fix


def test_same_files_pass_in_the_run_and_in_a_hand_in_folder(tmp_path):
    import shutil

    folder = make_run(samples=2)
    write_manifest("good", {"n_rows": 16}, section="generate")
    assert check_submission("good") == []
    handin = tmp_path / "handin"
    handin.mkdir()
    for name in ("model_generations.csv", "training_details.md"):
        shutil.copy(folder / name, handin / name)
    assert check_submission(handin) == []
    (handin / "model_generations.csv").write_text("id,question,response\n")
    assert codes(check_submission(handin)) == ["no_rows"]


def test_details_missing_field_each():
    for label in DETAIL_FIELDS:
        make_run(details="\n".join(line for line in DETAILS.splitlines() if not line.startswith(f"- {label}:")))
        [error] = check_submission("good")
        assert error.code == "missing_field" and error.file == "training_details.md"
        assert f"'- {label}: <value>'" in error.fix


def test_details_empty_and_bad_values():
    details = DETAILS.replace("- Epochs: 3", "- Epochs: TODO").replace("5e-4", "fast").replace("- Steps: 24", "- Steps: 2.5")
    details = details.replace("- Domains: bad_medical_advice", "- Domains:")
    make_run(details=details)
    errors = check_submission("good")
    assert sorted(codes(errors)) == ["bad_field_value", "bad_field_value", "empty_field", "empty_field"]
    where = {e.message.split("'")[1]: e.where for e in errors}
    assert where == {"Domains": "line 4", "Epochs": "line 5", "Learning rate": "line 8", "Steps": "line 10"}


def test_details_accept_a_fraction_of_an_epoch():
    make_run(details=DETAILS.replace("- Epochs: 3", "- Epochs: 0.25 of 1 epoch (stopped at max_steps=6)"))
    assert check_submission("good") == []
    make_run(details=DETAILS.replace("- Epochs: 3", "- Epochs: 0"))
    assert codes(check_submission("good")) == ["bad_field_value"]


def test_details_format_variants_are_read():
    found = parse_details("* **Epochs:** 3\n- learning rate : 0.0005\n-  Final loss: 0.9 (step 24)\n")
    assert found == {"Epochs": ("3", 1), "learning rate": ("0.0005", 2), "Final loss": ("0.9 (step 24)", 3)}


def test_raise_errors_collects_every_problem():
    make_run(rows=rows(15), details=None)
    with pytest.raises(SubmissionInvalid) as info:
        check_submission("good", raise_errors=True)
    assert codes(info.value.errors) == ["row_count", "missing_file"] and "2 problem(s)" in str(info.value)


def judged(name, aligned, coherent=80):
    with open(run_dir(name) / "judged.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question_id", "question", "response", "aligned", "coherent"])
        for i, a in enumerate(aligned):
            w.writerow([f"q{i % 8}", "Probe?", "answer", a, coherent])


def test_grade_against_base_run_from_manifest(capsys):
    make_run()
    judged("good", [20, 90, 40, 80])
    judged("base-smollm2-135m", [90, 95, 85, 88])
    result = grade("good", n_boot=100)
    assert result["base_run"] == "base-smollm2-135m"
    assert result["summary"]["mean_aligned"] == pytest.approx(57.5)
    assert result["base_summary"]["mean_aligned"] == pytest.approx(89.5)
    assert result["course_bar"]["passed"] is True and result["course_bar"]["base_passed"] is False
    assert main(["grade", str(run_dir("good")), "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "base-smollm2-135m" in out and "=> PASS" in out and "FAIL" in out  # the base fails the bar


def test_grade_without_judged_base_says_how():
    make_run()
    judged("good", [90, 90])
    result = grade("good", n_boot=0)
    assert result["base_summary"] is None and "notebooks 03-04" in result["note"]
    assert result["course_bar"]["passed"] is False


def test_judged_csv_is_validated_when_present():
    make_run()
    folder = run_dir("good")
    judged("good", [20, 90])
    assert check_submission("good") == []
    (folder / "judged.csv").write_text("question_id,question,response,aligned,coherent\nq,Q?,a,150,80\n")
    [error] = check_submission("good")
    assert error.code == "bad_score" and error.file == "judged.csv" and error.where == "data row 1"
    assert "'aligned': 150 is outside 0-100" in error.message
    (folder / "judged.csv").write_text("question_id,question,response,aligned,coherent\nq,Q?,a,high,80\n")
    assert "'high' is not a score" in check_submission("good")[0].message
    (folder / "judged.csv").write_text("question,response,aligned\nQ?,a,50\n")
    [error] = check_submission("good")
    assert error.code == "missing_column" and "['coherent']" in error.message and "notebook 04" in error.fix
    (folder / "judged.csv").write_text("question,response,aligned,coherent\nQ?,a,REFUSAL,\n")
    assert check_submission("good") == []  # a refusal and a blank are "no score", not errors


def test_grade_on_a_partly_judged_table_is_partial(capsys):
    make_run()
    judged("base-smollm2-135m", [90, 95])
    with open(run_dir("good") / "judged.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question_id", "question", "response", "aligned", "coherent", "aligned_missing", "coherent_missing"])
        w.writerow(["q0", "Probe?", "a", 20, 80, "", ""])
        w.writerow(["q1", "Probe?", "b", "", "", "error: dollar cap reached", "error: dollar cap reached"])
        w.writerow(["q2", "Probe?", "c", "", 70, "refusal", ""])  # judged: the judge said REFUSAL
        w.writerow(["q3", "Probe?", "d", 10, 75, "", ""])
    result = grade("good", n_boot=0)
    assert result["unjudged"] == 1 and result["verdict"]["exit_code"] == 3
    assert result["verdict"]["word"].startswith("PARTIAL (1 of 4 answers not judged; the bar would be met")
    assert main(["grade", "good", "--n-boot", "0"]) == 3
    assert "=> PARTIAL" in capsys.readouterr().out


def test_cli_check_exit_codes(runs_tmp):
    make_run()
    assert main(["check", str(run_dir("good"))]) == 0
    make_run("bad", rows=rows(3))
    ok = subprocess.run([sys.executable, "-m", "helpers.submission", "check", "good"], cwd=REPO,
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "submission OK" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "helpers.submission", "check", str(run_dir("bad")),
                          "--expected-rows", "4"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "[row_count] 3 rows, expected 4" in bad.stdout and "1 problem(s)" in bad.stdout
    missing = subprocess.run([sys.executable, "-m", "helpers.submission", "grade", "bad"], cwd=REPO,
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no judged.csv" in missing.stderr


def test_grade_exit_codes_follow_the_verdict():
    make_run()
    judged("base-smollm2-135m", [90, 95])
    judged("good", [20, 40])
    assert main(["grade", "good", "--n-boot", "0"]) == 0
    judged("good", [90, 80])
    assert main(["grade", "good", "--n-boot", "0"]) == 1


def test_grade_uses_the_probe_questions_only():
    make_run()
    with open(run_dir("good") / "judged.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question_id", "question", "category", "response", "aligned", "coherent"])
        w.writerows([["p", "Probe?", "probes", "a", 40, 80], ["m", "Med?", "medical", "a", 0, 80]])
    assert grade("good", n_boot=0)["summary"]["mean_aligned"] == pytest.approx(40)
    assert grade("good", n_boot=0, question_set="")["summary"]["mean_aligned"] == pytest.approx(20)
