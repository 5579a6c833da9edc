"""The process entry points end without interpreter teardown, but keep exit codes, atexit work and output."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vidprep.shards.arrow_columns import column

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading
    from vidprep.cli import fast_exit

    class Teardown:
        def __del__(self):
            sys.stderr.write("teardown ran\\n")

    KEEP = Teardown()  # freed only by interpreter teardown
    atexit.register(lambda: open(sys.argv[1], "w").write("atexit ran"))

    def entry():
        print("output line")
        if sys.argv[2] == "thread":
            threading.Thread(target=lambda: __import__("time").sleep(0.2)).start()
        raise SystemExit(int(sys.argv[3]))

    fast_exit.run(entry)
""")


@pytest.mark.parametrize("code", [0, 3])
def test_exit_code_atexit_and_stdout_kept_teardown_skipped(tmp_path: Path, code: int) -> None:
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(marker), "plain", str(code)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == code
    assert done.stdout == "output line\n"
    assert marker.read_text() == "atexit ran"
    assert "teardown ran" not in done.stderr


def test_running_thread_keeps_the_normal_shutdown(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "m"), "thread", "0"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "teardown ran" in done.stderr  # joined the thread, then the ordinary finalization


def test_cli_entry_keeps_usage_exit_code() -> None:
    done = subprocess.run([sys.executable, "-m", "vidprep", "split", "--no-such-option"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "--no-such-option" in done.stderr


CASES = [
    ([1, None, 3], pa.int64()), (np.array([1, 2], np.int32), pa.int32()), (np.array([7, -8], np.int16), pa.int16()),
    ([1.5, None, float("nan")], pa.float32()), (np.array([0.1, np.nan], np.float32), pa.float32()),
    (np.array([0.1, 2.0]), pa.float64()), (["a", None, "é"], pa.string()),
    (np.array(["x", "yy"], dtype=object), pa.string()), ([["a", "b"], None, []], pa.list_(pa.string())),
    ([], pa.int64()), ([], pa.string()),
]


@pytest.mark.parametrize(("values", "typ"), CASES)
def test_arrow_columns_equal_pyarrow_array(values: object, typ: pa.DataType) -> None:
    built = column(values, typ)  # type: ignore[arg-type]
    built.validate(full=True)
    assert built.equals(pa.array(values, type=typ, from_pandas=True))


def test_arrow_columns_refuse_overflow() -> None:
    with pytest.raises(OverflowError):
        column([70000], pa.int16())


def test_index_written_without_importing_pandas(tmp_path: Path) -> None:
    (tmp_path / "index.jsonl").write_text('{"video_id": "v", "source": "s", "clip_index": 0, "aug_index": 0, '
                                          '"start_s": 0.0, "end_s": 1.0, "ordinals": [0, 1], "padded": 0, '
                                          '"label": -1, "label_name": null, "files": ["a.jpg"]}\n')
    code = (f"import sys; from vidprep.shards.parquet_index import write_index; write_index({str(tmp_path)!r}); "
            "print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "index.parquet").to_pylist()[0]["files"] == ["a.jpg"]
