"""boto3 clients: credentials from the standard chain; the endpoint from the config or, when
the config names none, from AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> (boto3 reads those).

The region: the configuration's, else AWS_DEFAULT_REGION, else AWS_REGION, else the profile's.
botocore itself reads only AWS_DEFAULT_REGION and the profile; AWS_REGION is what the other
AWS SDKs, Lambda and ECS set, so it is honoured here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from forwarder.config import ConfigError

if TYPE_CHECKING:
    import boto3


def client(service: str, region: str | None = None, endpoint_url: str | None = None, pool: int = 10,
           session: boto3.Session | None = None) -> Any:
    # boto3 loads in the commands that call AWS, not in every one that imports this module.
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import InvalidRegionError, NoRegionError

    settings = BotoConfig(
        max_pool_connections=max(pool, 10),
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        # Long polls hold a request for up to 20 s; the read timeout must outlast that.
        read_timeout=60,
        # botocore's own CPU per request is large (benchmarks/README.md: objects are read with
        # awscrt for that reason, sources/s3get.py); these two take about a third of it off a
        # call. The parameters are the code's own, never user input, so validating them finds
        # nothing; a CloudTrail object's integrity is checked by gzip's CRC and the JSON parse
        # anyway, so the extra response checksum (a pass over every byte) only where AWS requires it.
        parameter_validation=False,
        response_checksum_validation="when_required",
        request_checksum_calculation="when_required",
    )
    if not region and not os.environ.get("AWS_DEFAULT_REGION"):
        region = os.environ.get("AWS_REGION") or None
    try:
        return (session or boto3.Session()).client(service, region_name=region, endpoint_url=endpoint_url, config=settings)
    except NoRegionError:
        raise ConfigError(f"no AWS region for {service}: set source.region in the configuration, or AWS_REGION "
                          "or AWS_DEFAULT_REGION in the environment (or region in the AWS profile)") from None
    except InvalidRegionError as exc:
        name = exc.kwargs.get("region_name")
        raise ConfigError(f"{name!r} is not an AWS region name (source.region, AWS_REGION or AWS_DEFAULT_REGION): "
                          "use one such as eu-central-1") from None


def error_code(exc: BaseException) -> str:
    """The AWS error code of a failed call (``NoSuchKey``, ...); empty for anything else."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
