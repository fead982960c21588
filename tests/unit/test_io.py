import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from sonoflow.io import FileFormatError, atomic_path, read_json_object, save_json, save_npy


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.npy"
    save_npy(target, np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]
    np.testing.assert_array_equal(np.load(target), np.arange(3))


def test_sigkill_mid_write_leaves_only_a_hidden_temp_that_the_next_write_removes(tmp_path):
    target = tmp_path / "out.npy"
    script = (f"import time; from sonoflow.io import atomic_path\n"
              f"with atomic_path({str(target)!r}) as tmp:\n"
              f"    tmp.write_bytes(b'half'); print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".out.npy.") and not target.exists()
    save_npy(target, np.arange(2))
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]


def test_loaded_arrays_are_copy_on_write_and_the_file_never_changes(tmp_path):
    import warnings

    import numpy as np
    import torch

    from sonoflow.io import load_npy, save_npy

    path = tmp_path / "a.npy"
    save_npy(path, np.arange(6, dtype=np.uint8))
    array = load_npy(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "NumPy array is not writable" from torch
        torch.as_tensor(array)
    array[0] = 99
    assert load_npy(path)[0] == 0


def test_sigkill_mid_folder_write_leaves_a_hidden_folder_that_the_next_writer_removes(tmp_path):
    from sonoflow.io import atomic_dir

    target = tmp_path / "previews"
    with atomic_dir(target) as folder:
        (folder / "old.png").write_bytes(b"v1")
    script = (f"import time; from sonoflow.io import atomic_dir\n"
              f"with atomic_dir({str(target)!r}) as tmp:\n"
              f"    (tmp / 'half.png').write_bytes(b'x'); print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert len(leftovers) == 2 and leftovers[0].startswith(".previews.") and leftovers[1] == "previews"
    assert [p.name for p in target.iterdir()] == ["old.png"], "the old folder stays whole"
    with pytest.raises(RuntimeError):  # the next writer, even one that fails, starts by removing it
        with atomic_dir(target) as folder:
            assert not (tmp_path / leftovers[0]).exists()
            (folder / "new.png").write_bytes(b"v2")
            raise RuntimeError("failed")
    assert [p.name for p in tmp_path.iterdir()] == ["previews"], "no temp folder left, the old one kept"
    assert [p.name for p in target.iterdir()] == ["old.png"]
    with atomic_dir(target) as folder:
        (folder / "new.png").write_bytes(b"v2")
    assert [p.name for p in tmp_path.iterdir()] == ["previews"]
    assert [p.name for p in target.iterdir()] == ["new.png"] and oct(target.stat().st_mode & 0o777) != "0o700"


def test_read_json_object_round_trip_and_errors_name_the_file(tmp_path):
    path = tmp_path / "record.json"
    save_json(path, {"b": [1, 2], "a": None})
    assert read_json_object(path, "a record") == {"a": None, "b": [1, 2]}
    path.write_text("{oops")
    with pytest.raises(FileFormatError, match=f"{re.escape(str(path))} is not a record: not JSON"):
        read_json_object(path, "a record")
    path.write_text("[]")
    with pytest.raises(FileFormatError, match=f"{re.escape(str(path))} is not a record: it holds a JSON list"):
        read_json_object(path, "a record")
