import torch

from avplug.engine.checkpoint import Checkpointer


def _state(step):
    return {"model": {"w": torch.full((3,), float(step))}, "step": step}


def test_save_points_last_checkpoint_and_loads_with_weights_only(tmp_path):
    ck = Checkpointer(tmp_path)
    ck.save(10, _state(10))
    path = ck.save(20, _state(20))
    assert (tmp_path / "last_checkpoint").read_text() == path.name
    found, state = ck.load_latest()
    assert found == path and state["step"] == 20
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file may be left behind"


def test_corrupt_or_half_written_newest_falls_back_to_previous(tmp_path):
    ck = Checkpointer(tmp_path)
    ck.save(10, _state(10))
    newest = ck.save(20, _state(20))
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a half-written copy
    path, state = ck.load_latest()
    assert state["step"] == 10 and path.name == "model_0000010.pth"
    newest.write_bytes(b"garbage")
    assert ck.load_latest()[1]["step"] == 10


def test_pointer_to_missing_file_and_empty_dir(tmp_path):
    ck = Checkpointer(tmp_path)
    assert ck.load_latest() is None and ck.latest_path() is None
    ck.save(5, _state(5))
    (tmp_path / "last_checkpoint").write_text("model_0000099.pth")
    assert ck.load_latest()[1]["step"] == 5


def test_keeps_only_the_newest(tmp_path):
    ck = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3, 4):
        ck.save(step, _state(step))
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == ["model_0000003.pth", "model_0000004.pth"]
