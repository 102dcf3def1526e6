"""A fast start: a command loads what its path needs and no more (benchmarks/startup.py has the
figures). Each check runs in a fresh interpreter, as a command starts."""

from __future__ import annotations

import subprocess
import sys

import orjson

from forwarder.config import Config, load_config, parse_config

# The clients of the SIEMs, AWS, the Sigma kit, the metrics server, PyYAML: each is loaded by
# the commands and configurations that use it.
HEAVY = ("boto3", "botocore", "awscrt", "elasticsearch", "elastic_transport", "opensearchpy", "splunklib", "sigma",
         "prometheus_client", "yaml", "maxminddb")


def _loaded_after(code: str) -> dict[str, object]:
    probe = f"""
import contextlib, io, sys, orjson
{code}
import forwarder.config as config
models = [m for m in vars(config).values() if isinstance(m, type) and issubclass(m, config.BaseModel)]
print(orjson.dumps({{"modules": sorted(sys.modules), "built": [m.__name__ for m in models if m.__pydantic_complete__]}}).decode())
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return orjson.loads(done.stdout.splitlines()[-1])


def test_enrich_without_a_configuration_loads_no_client_and_builds_no_model() -> None:
    loaded = _loaded_after("""
from forwarder.cli import main
with contextlib.redirect_stderr(io.StringIO()):
    main(["enrich", "/dev/null"])
""")
    modules = set(loaded["modules"])  # type: ignore[arg-type]
    assert not {name for name in HEAVY if name in modules}
    assert "forwarder.cli" in modules and "forwarder.enrich.enricher" in modules  # the probe ran the command
    assert loaded["built"] == []  # no validator built: none was needed


def test_the_daemons_modules_load_no_siem_client_and_no_sigma_kit() -> None:
    loaded = _loaded_after("import forwarder.cli, forwarder.daemon, forwarder.sources.sqs, forwarder.sources.s3poll")
    modules = set(loaded["modules"])  # type: ignore[arg-type]
    assert not {name for name in ("elasticsearch", "opensearchpy", "splunklib", "sigma", "yaml") if name in modules}


def test_the_unvalidated_defaults_equal_the_validated_ones() -> None:
    """The defaults are made without validation (forwarder/config.py, _Model): they must be
    what validating an empty configuration gives."""
    constructed, validated = load_config(None), parse_config({})
    assert constructed == validated and constructed == Config()
    assert orjson.dumps(constructed.model_dump(mode="json")) == orjson.dumps(validated.model_dump(mode="json"))
    assert constructed.model_fields_set == validated.model_fields_set == set()
