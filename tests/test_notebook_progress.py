"""Headless runs say what they are doing: the running cell and its latest printed line, read from papermill's copy."""

import nbformat

from helpers.notebook_runs import _Watcher


def test_watcher_names_the_running_cell_and_its_last_printed_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    done = nbformat.v4.new_code_cell("x = 1")
    done.metadata["papermill"] = {"status": "completed"}
    running = nbformat.v4.new_code_cell("# train the adapter\nresult = train(cfg)\nresult")
    running.metadata["papermill"] = {"status": "running"}
    running.outputs = [nbformat.v4.new_output("stream", name="stdout", text="step 3/24\rstep 4/24 loss 2.9\n"),
                       nbformat.v4.new_output("stream", name="stderr", text="UserWarning: something\n"),
                       nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"})]
    pending = nbformat.v4.new_code_cell("plot()")
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), done, running, pending]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert _Watcher(path).status() == "cell 2/3: result = train(cfg)  | step 4/24 loss 2.9"

    running.metadata["papermill"]["status"] = "completed"
    nbformat.write(nb, path)
    assert _Watcher(path).status() is None  # between cells there is nothing to say
    assert _Watcher(tmp_path / "not-written-yet.ipynb").status() is None


def test_headless_runs_print_no_kernel_warnings(tmp_path):
    """`make demo`'s kernels talk over local IPC sockets: no "Kernel is running over TCP without encryption"."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell('run_name = "x"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('ran', run_name)")]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    code = ("from helpers.notebook_runs import execute; r = execute(%r, 'kernel-check', {}); "
            "print('error:', r.error)" % str(tmp_path / "tiny.ipynb"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "error: None" in out.stdout, out.stdout + out.stderr
    assert "without encryption" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "ran kernel-check" in (tmp_path / "runs" / "kernel-check" / "notebooks" / "tiny.ipynb").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("kernel")]  # no socket files left in the cwd
