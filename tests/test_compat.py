"""pytorchvideo imports only through avplug's shim (avplug.compat), and its transforms then work."""
import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True, text=True, timeout=300)


def test_pytorchvideo_transforms_work_after_importing_avplug():
    result = _run(
        """
        import avplug
        import torch
        import pytorchvideo.transforms as T
        out = T.ShortSideScale(32)(torch.rand(3, 2, 48, 64))
        assert out.shape == (3, 2, 32, 42), out.shape
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_without_the_shim_pytorchvideo_transforms_fail_on_functional_tensor():
    result = _run("import pytorchvideo.transforms")
    if result.returncode == 0:
        pytest.skip("this torchvision / pytorchvideo pair imports without the shim")
    assert "functional_tensor" in result.stderr
