"""torchvision imported without torch._dynamo (`vidprep.stages.models.torchvision_import`), each case in a fresh
interpreter: what is in ``sys.modules`` afterwards is the truth."""

from __future__ import annotations

import json
import subprocess
import sys


def fresh(code: str) -> dict:
    """The JSON a fresh interpreter prints last after running ``code``."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plain_import_loads_the_compiler_stack() -> None:
    """The control: the ordinary import does load torch._dynamo, so the tests below can fail."""
    assert fresh("import json, sys, torchvision\nprint(json.dumps('torch._dynamo' in sys.modules))")


def test_torchvision_works_without_dynamo_and_dynamo_stays_importable() -> None:
    out = fresh("""
import json, sys, torch
from vidprep.stages.models.torchvision_import import import_torchvision
tv = import_torchvision()
model = tv.models.resnet18(weights=None).eval()
with torch.inference_mode():
    shape = list(model(torch.zeros(1, 3, 64, 64)).shape)
pooled = tv.ops.roi_align(torch.full((1, 1, 8, 8), 3.0), [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], output_size=2)
loaded = 'torch._dynamo' in sys.modules
import torch._dynamo.utils
module = sys.modules["torchvision.ops.roi_align"]  # the package attribute of that name is the function
print(json.dumps({"loaded": loaded, "shape": shape, "pooled": pooled.flatten().tolist(),
                  "real": hasattr(torch._dynamo, "optimize"),
                  "same": module.is_compile_supported("cpu") == torch._dynamo.utils.is_compile_supported("cpu")}))
""")
    assert out == {"loaded": False, "shape": [1, 1000], "pooled": [3.0] * 4, "real": True, "same": True}


def test_a_feature_model_is_built_and_run_without_dynamo() -> None:
    out = fresh("""
import json, sys
import numpy as np
from vidprep.config import FeaturesConfig
from vidprep.stages.features import FeatureExtractor
ex = FeatureExtractor(FeaturesConfig(model="resnet18", weights="none", precision="fp32"), threads=1)
feats = ex.extract_frames(np.zeros((2, 64, 64, 3), np.uint8))
print(json.dumps({"loaded": 'torch._dynamo' in sys.modules, "shape": list(feats.shape)}))
""")
    assert out == {"loaded": False, "shape": [2, 512]}


def test_a_torchvision_needing_more_of_dynamo_is_imported_the_ordinary_way() -> None:
    """Stand-ins without the function torchvision imports make that import fail; it is retried without them."""
    out = fresh("""
import json, sys, types
from vidprep.stages.models import torchvision_import as ti
ti._stand_ins = lambda: {ti.DYNAMO: types.ModuleType(ti.DYNAMO), ti.DYNAMO_UTILS: types.ModuleType(ti.DYNAMO_UTILS)}
ti._stand_ins()[ti.DYNAMO].__path__ = []
tv = ti.import_torchvision()
print(json.dumps({"version": tv.__version__ == sys.modules["torchvision"].__version__,
                  "ops": hasattr(tv.ops, "roi_align"), "real": hasattr(sys.modules["torch._dynamo"], "optimize")}))
""")
    assert out == {"version": True, "ops": True, "real": True}
