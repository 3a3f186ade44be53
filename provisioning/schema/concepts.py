"""The one table of concepts: what each column of the six entities means, and how it may be spelled.

Platforms name the same thing differently: the guide's ``hashed_password`` is the code's
``password_hash``, the guide's ``full_name`` is ``first_name`` + ``last_name``, an MCP
endpoint is a ``url`` column or a key inside ``config``.  A **concept** is one such
meaning; its **spellings** are the column sets a live table may have for it, each fed
by one or more builder *fields* (``rowbase.FIELDS``) in the shape that spelling wants.
``binding.bind_table`` reflects the live table and binds each concept to the spellings
that exist; a concept none of whose spellings exists is skipped (and said once), except
the **essential** ones (keys, tenant key, login email, password hash), which are errors.

Where the two dialects share a column name but want different values (roles
``member`` vs ``user``, agent status ``deleted`` vs ``archived``, MCP transports), the
table's **flavour** decides: a table that has the guide's tell-tale column is written
with the guide's values, every other table with the values of the platform's code (v1).

``VOCABULARIES`` lists the values each vocabulary field can take: the dry run shows them,
CHECK constraints are compared with them, and a schema map's ``vocab`` table renames them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CONCEPTS",
    "FIELD_KINDS",
    "FLAVOURS",
    "VOCABULARIES",
    "Concept",
    "Spelling",
    "fill_by_name",
    "flavour_of",
]

# The six entities the toolkit provisions, in load order (parents first): the one list of them.
CONTRACT_TABLES = ("tenants", "users", "agents", "workflows", "collections", "mcp_servers")
FLAVOURS = ("guide", "v1")


@dataclass(frozen=True)
class Spelling:
    """Columns a live table may have for a concept, and the builder fields that feed them.

    ``v1_fields`` (when given) replace ``fields`` in a v1-flavoured table; ``label``
    names the spelling when it is not just its columns (``config.url``).
    """

    columns: tuple[str, ...]
    fields: tuple[str, ...]
    v1_fields: tuple[str, ...] | None = None
    label: str = ""

    def fields_for(self, flavour: str) -> tuple[str, ...]:
        return self.v1_fields if flavour == "v1" and self.v1_fields is not None else self.fields

    @property
    def name(self) -> str:
        return self.label or "+".join(self.columns)


@dataclass(frozen=True)
class Concept:
    """One meaning; ``exclusive``: only the first spelling that exists is written."""

    name: str
    spellings: tuple[Spelling, ...]
    essential: bool = False
    exclusive: bool = False

    @property
    def looked_for(self) -> str:
        return " | ".join(s.name for s in self.spellings)


def _c(name: str, field: str | None = None, *, v1: str | None = None, column: str | None = None,
       essential: bool = False) -> Concept:
    """A concept with one single-column spelling (the column defaults to the concept's name)."""
    col = column or name
    f = field or col
    return Concept(name, (Spelling((col,), (f,), (v1,) if v1 else None),), essential=essential)


def _timestamps(*names: str) -> tuple[Concept, ...]:
    return tuple(_c(n) for n in names)


_ID = _c("id", essential=True)
_TENANT = _c("tenant_id", essential=True)

CONCEPTS: Mapping[str, tuple[Concept, ...]] = {
    "tenants": (
        _ID, _c("name"), _c("slug"), _c("status"),
        _c("plan_type"), _c("email"), _c("contact_name"),
        _c("max_agents"), _c("max_requests_per_day"), _c("max_tokens_per_month"),
        _c("settings", v1="settings_v1"), _c("extra_metadata"),
        *_timestamps("created_at", "updated_at"),
    ),
    "users": (
        _ID, _TENANT,
        _c("email", essential=True),
        Concept("password_hash", (Spelling(("hashed_password",), ("hashed_password",)),
                                  Spelling(("password_hash",), ("hashed_password",))), essential=True),
        _c("username"),
        Concept("name", (Spelling(("full_name",), ("full_name",)),
                         Spelling(("first_name", "last_name"), ("first_name", "last_name")))),
        _c("role", v1="role_v1"),
        Concept("active", (Spelling(("is_active",), ("is_active",)), Spelling(("status",), ("status",)))),
        _c("email_verified"),
        *_timestamps("created_at", "updated_at"),
    ),
    "agents": (
        _ID, _TENANT, _c("created_by"), _c("name"), _c("slug"), _c("description"), _c("system_prompt"),
        _c("model_provider"), _c("model_name"), _c("temperature"), _c("max_tokens"),
        _c("status", v1="status_v1"),
        _c("capabilities"), _c("tools"), _c("timeout_seconds"), _c("max_iterations"), _c("memory_enabled"),
        _c("version"), _c("tags"), _c("config"), _c("extra_metadata"),
        *_timestamps("created_at", "updated_at", "deleted_at"),
    ),
    "workflows": (
        _ID, _TENANT, _c("created_by"), _c("name"), _c("slug"), _c("description"),
        Concept("body", (Spelling(("definition",), ("definition",), label="definition (DAG)"),
                         Spelling(("steps",), ("steps",), label="steps (list)"))),
        _c("triggers"), _c("version"), _c("timeout_seconds"), _c("max_retries"), _c("retry_strategy"),
        _c("status", v1="status_v1"), _c("tags"), _c("category"), _c("extra_metadata"),
        _c("execution_count"), _c("success_count"), _c("failure_count"),
        *_timestamps("created_at", "updated_at"),
    ),
    "collections": (
        _ID, _TENANT, _c("name"), _c("slug"), _c("description"),
        Concept("embedding", (
            Spelling(("embedding_model", "embedding_dimensions"), ("embedding_model_v1", "embedding_dimensions")),
            Spelling(("embedding_model",), ("embedding_model",), ("embedding_model_v1",)),
        ), exclusive=True),
        _c("chunk_size"), _c("chunk_overlap"), _c("visibility"), _c("document_count"), _c("chunk_count"),
        _c("status"), _c("config"), _c("extra_metadata"),
        *_timestamps("created_at", "updated_at"),
    ),
    "mcp_servers": (
        _ID, _TENANT, _c("name"), _c("slug"), _c("description"),
        Concept("transport", (Spelling(("transport",), ("transport",), ("server_type",)),
                              Spelling(("server_type",), ("server_type",)))),
        Concept("endpoint", (Spelling(("url",), ("url",)),
                             Spelling(("config",), ("config_v1",), label="config.url")), exclusive=True),
        _c("command"), _c("args"), _c("config", v1="config_v1"),
        _c("status", v1="status_v1"), _c("version"), _c("category"), _c("author"),
        _c("tools"), _c("resources"), _c("prompts"), _c("env_vars"), _c("health_status"), _c("visibility"),
        _c("total_executions"), _c("successful_executions"), _c("failed_executions"), _c("extra_metadata"),
        *_timestamps("created_at", "updated_at"),
    ),
}

#: A table is guide-flavoured when this column is present (tenants: when it is absent).
_GUIDE_TELLTALES: Mapping[str, tuple[str, bool]] = {
    "tenants": ("plan_type", False),
    "users": ("is_active", True),
    "agents": ("created_by", True),
    "workflows": ("definition", True),
    "collections": ("slug", True),
    "mcp_servers": ("transport", True),
}


def flavour_of(table: str, has_column: object) -> tuple[str, str]:
    """(flavour, why) of a table; ``has_column(name)`` says whether the live table has a column."""
    column, present_means_guide = _GUIDE_TELLTALES[table]
    present = bool(has_column(column))  # type: ignore[operator]
    if present == present_means_guide:
        return "guide", f"{'has' if present else 'no'} {column}"
    return "v1", f"{'has' if present else 'no'} {column}"


#: What each builder field holds, for type checks against the live column.
#: id/ref: a key; text; bool; int; float; json (JSON text: an object or a list); ts (timestamp).
FIELD_KINDS: Mapping[str, Mapping[str, str]] = {
    "tenants": {"id": "id", "name": "text", "slug": "text", "settings": "json", "status": "text",
                "created_at": "ts", "plan_type": "text", "email": "text", "contact_name": "text",
                "max_agents": "int", "max_requests_per_day": "int", "max_tokens_per_month": "int",
                "settings_v1": "json", "extra_metadata": "json", "updated_at": "ts"},
    "users": {"id": "id", "tenant_id": "ref", "email": "text", "username": "text", "hashed_password": "text",
              "full_name": "text", "role": "text", "is_active": "bool", "status": "text", "created_at": "ts",
              "first_name": "text", "last_name": "text", "role_v1": "text", "email_verified": "bool",
              "updated_at": "ts"},
    "agents": {"id": "id", "tenant_id": "ref", "created_by": "ref", "name": "text", "slug": "text",
               "description": "text", "system_prompt": "text", "model_provider": "text", "model_name": "text",
               "temperature": "float", "max_tokens": "int", "status": "text", "created_at": "ts",
               "updated_at": "ts", "deleted_at": "ts", "status_v1": "text", "capabilities": "json",
               "tools": "json", "timeout_seconds": "int", "max_iterations": "int", "memory_enabled": "bool",
               "version": "text", "tags": "json", "config": "json", "extra_metadata": "json"},
    "workflows": {"id": "id", "tenant_id": "ref", "created_by": "ref", "name": "text", "slug": "text",
                  "description": "text", "definition": "json", "status": "text", "created_at": "ts",
                  "steps": "json", "triggers": "json", "version": "text", "timeout_seconds": "int",
                  "max_retries": "int", "retry_strategy": "text", "status_v1": "text", "tags": "json",
                  "category": "text", "extra_metadata": "json", "execution_count": "int",
                  "success_count": "int", "failure_count": "int", "updated_at": "ts"},
    "collections": {"id": "id", "tenant_id": "ref", "name": "text", "slug": "text", "description": "text",
                    "embedding_model": "text", "status": "text", "created_at": "ts",
                    "embedding_model_v1": "text", "embedding_dimensions": "int", "chunk_size": "int",
                    "chunk_overlap": "int", "visibility": "text", "document_count": "int", "chunk_count": "int",
                    "config": "json", "extra_metadata": "json", "updated_at": "ts"},
    "mcp_servers": {"id": "id", "tenant_id": "ref", "name": "text", "slug": "text", "transport": "text",
                    "url": "text", "command": "text", "args": "json", "config": "json", "status": "text",
                    "created_at": "ts", "server_type": "text", "config_v1": "json", "description": "text",
                    "status_v1": "text", "version": "text", "category": "text", "author": "text",
                    "tools": "json", "resources": "json", "prompts": "json", "env_vars": "json",
                    "health_status": "text", "visibility": "text", "total_executions": "int",
                    "successful_executions": "int", "failed_executions": "int", "extra_metadata": "json",
                    "updated_at": "ts"},
}

#: The values a vocabulary field takes (what the builders write), per (table, field).
VOCABULARIES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("tenants", "status"): ("active",),
    ("tenants", "plan_type"): ("free", "starter", "pro", "enterprise"),
    ("users", "role"): ("admin", "member", "viewer"),
    ("users", "role_v1"): ("admin", "user", "viewer"),
    ("users", "status"): ("active", "inactive"),
    ("agents", "status"): ("active", "deleted"),
    ("agents", "status_v1"): ("active", "inactive", "archived"),
    ("workflows", "status"): ("active",),
    ("workflows", "status_v1"): ("draft", "active", "archived"),
    ("workflows", "retry_strategy"): ("exponential", "linear", "none"),
    ("collections", "status"): ("active",),
    ("collections", "visibility"): ("private", "shared", "public"),
    ("mcp_servers", "transport"): ("stdio", "sse", "streamable_http"),
    ("mcp_servers", "server_type"): ("stdio", "sse", "websocket"),
    ("mcp_servers", "status"): ("active",),
    ("mcp_servers", "status_v1"): ("inactive", "ready", "running", "unhealthy", "stopped"),
    ("mcp_servers", "health_status"): ("healthy", "unhealthy"),
    ("mcp_servers", "visibility"): ("private", "shared", "public"),
}

#: The platform's vocabularies by column name, for unknown NOT NULL columns (first value = the fill).
_CONTRACT_VOCAB: Mapping[str, tuple[str, ...]] = {
    "visibility": ("private", "shared", "public"),
    "health_status": ("healthy", "unhealthy"),
    "retry_strategy": ("exponential", "linear", "none"),
    "plan_type": ("free", "starter", "pro", "enterprise"),
    "role": ("user", "admin", "viewer"),
    "server_type": ("stdio", "sse", "websocket"),
}
_STATUS_VOCAB: Mapping[str, tuple[str, ...]] = {
    "tenants": ("active", "suspended", "deleted"),
    "users": ("active", "inactive", "suspended"),
    "agents": ("active", "inactive", "archived"),
    "workflows": ("active", "draft", "archived"),
    "collections": ("active",),
    "mcp_servers": ("inactive", "starting", "ready", "running", "unhealthy", "stopped", "failed"),
}
_COUNT_RE = re.compile(r"(^|_)(count|executions|total)$")


def fill_by_name(table: str, column: str, kind: str, checks: tuple[str, ...]) -> tuple[object, str] | None:
    """A value an unknown NOT NULL column's name says it wants, with why; None: fill by type.

    ``kind`` is the column's type family ("text", "int", ...); ``checks`` the values a CHECK
    constraint allows (first one wins).  Emails are on a reserved domain.
    """
    name = column.lower()
    if kind == "text":
        if checks:
            return checks[0], "first value its CHECK allows"
        if name in _CONTRACT_VOCAB:
            return _CONTRACT_VOCAB[name][0], f"first value of the platform's {name} vocabulary"
        if name == "status" or name.endswith("_status"):
            vocab = _STATUS_VOCAB.get(table, ("active",))
            return vocab[0], f"first value of the platform's {table} status vocabulary"
        if name == "version" or name.endswith("_version"):
            return "1.0.0", "a semantic version"
        if name == "email" or name.endswith("_email"):
            return "loadtest@example.com", "an address on a reserved domain"
    if kind == "int" and _COUNT_RE.search(name):
        return 0, "a count"
    return None
