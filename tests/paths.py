"""Where things are: the checkout, and the public CloudTrail samples and design pages in
``../shared`` beside it (or wherever FORWARDER_SHARED points when the checkout stands elsewhere)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FORWARDER_SHARED") or REPO.parent / "shared")
DATA = SHARED / "data"
DEMO_CONFIG = REPO / "forwarder" / "samples" / "demo-config.yaml"
