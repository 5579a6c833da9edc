"""Named in the process executor's forkserver preload: importing it imports torchvision without ``torch._dynamo``
(`vidprep.stages.models.torchvision_import`), once, in the process every worker is forked from."""

from vidprep.stages.models.torchvision_import import import_torchvision

import_torchvision()
