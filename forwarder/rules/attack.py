"""MITRE ATT&CK data for pySigma, from a local file: nothing is fetched from the internet.

pySigma 1.5 loads ATT&CK on first use (the ATT&CK tag validator, the Kibana rule formats'
``threat`` field) from GitHub, and caches it under ~/.cache/pysigma. The forwarder points it at
a file instead: by default the subset of Enterprise ATT&CK that its rules are tagged with
(data/attack-subset.json), or a full ``enterprise-attack.json`` named by FORWARDER_ATTACK_DATA.
The cache lives in the forwarder's own directory (~/.cache/forwarder/attack), so a user's own
pySigma cache is neither read nor cleared. The D3FEND validator has no local mode worth keeping and is not used.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from sigma.data import mitre_attack

SUBSET = Path(__file__).parent / "data" / "attack-subset.json"
ENV = "FORWARDER_ATTACK_DATA"


@cache
def use_local_attack_data() -> Path:
    """Point pySigma at local ATT&CK data (once per process); returns the file used."""
    source = Path(os.environ.get(ENV) or SUBSET)
    if not source.is_file():
        raise FileNotFoundError(f"{ENV}={source}: no such ATT&CK STIX file")
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    mitre_attack.set_cache_dir(str(cache_home / "forwarder" / "attack"))
    mitre_attack.set_url(str(source))
    return source
