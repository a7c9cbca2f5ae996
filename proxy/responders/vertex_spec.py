"""The ``vertex`` responder's options: where (project, location, or a ``base_url``), with what
credentials (a service account's JSON, Application Default Credentials, or express-mode keys).

Express keys, like Gemini keys, are each a project of their own unless grouped with
``{key, project}``; a service account or ADC is one project, ``project``. The spec never shows a
key or a credential in a repr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from proxy.reader import Reader
from proxy.responders.gemini_spec import _keys, transport

GLOBAL_HOST = "https://aiplatform.googleapis.com"
# The multi-regions have hosts of their own; any other location is a region.
MULTI_REGIONS = {
    "us": "https://aiplatform.us.rep.googleapis.com",
    "eu": "https://aiplatform.eu.rep.googleapis.com",
}
ADC = "adc"


def host_for(location: str) -> str:
    """Vertex's host for ``location``: global, a multi-region, or a region."""
    if location == "global":
        return GLOBAL_HOST
    return MULTI_REGIONS.get(location, f"https://{location}-aiplatform.googleapis.com")


@dataclass(frozen=True, slots=True)
class VertexSpec:
    base_url: str = GLOBAL_HOST
    project: str = ""
    location: str = "global"
    api_version: str = "v1"
    # One of: a service account's JSON (the file's text, or the text a variable held), "adc",
    # or express keys.
    service_account: str = ""
    adc: bool = False
    api_keys: tuple[str, ...] = ()
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 0.0
    projects: tuple[int, ...] = ()
    project_names: tuple[str, ...] = ()
    ca_file: str = ""
    without_keys: str = ""

    @property
    def express(self) -> bool:
        """Express mode: API keys, and paths with no project or location."""
        return bool(self.api_keys)

    def __repr__(self) -> str:  # SECURITY: no key, no credential through a repr.
        how = "express" if self.express else "adc" if self.adc else "service account"
        return f"VertexSpec(base_url={self.base_url!r}, project={self.project!r}, auth={how})"


def _service_account(r: Reader) -> tuple[str, bool]:
    """``credentials_file: PATH``, or ``credentials: adc``, or ``credentials: "${VAR}"`` holding
    the JSON itself."""
    path = r.text("credentials_file", "")
    inline = r.text("credentials", "")
    if path and inline:
        r.error("credentials", "give 'credentials_file' or 'credentials', not both")
        return "", False
    if inline == ADC:
        return "", True
    text = inline
    if path:
        try:
            text = Path(path).read_text()
        except OSError:
            r.bad("credentials_file", path, "cannot be read")
            return "", False
    if not text:
        return "", False
    try:
        info = json.loads(text)
    except ValueError:
        # SECURITY: the text may be a key: it is never shown.
        r.error("credentials", "must be a service account's JSON, or 'adc' (not shown)")
        return "", False
    if not isinstance(info, dict) or info.get("type") != "service_account":
        r.error("credentials", "must be a service account's JSON (its 'type': service_account)")
        return "", False
    return text, False


def parse(r: Reader) -> VertexSpec:
    location = r.text("location", "global")
    base_url = r.text("base_url", "").rstrip("/") or host_for(location)
    if not base_url.startswith(("http://", "https://")):
        r.bad("base_url", base_url, "must start with http:// or https://")
    service_account, adc = _service_account(r)
    keys, projects, names = _keys(r)
    project = r.text("project", "")
    chosen = sum(map(bool, (service_account, adc, keys)))
    without = r.text("without_keys", "")
    if chosen > 1:
        r.error("api_keys", "give one of 'credentials_file', 'credentials' or 'api_keys'")
    elif not chosen and not without:
        r.error(
            "credentials",
            "no credentials: give 'credentials_file' (a service account's JSON), "
            "'credentials: adc', or express 'api_keys'",
        )
    if (service_account or adc) and not project:
        r.error("project", "a service account or ADC needs the 'project' it bills")
    if not keys:  # one credential: one project
        projects, names = (0,), (project or "vertex",)
    return VertexSpec(
        base_url=base_url,
        project=project,
        location=location,
        api_version=r.choice("api_version", "v1", ("v1", "v1beta1")),
        service_account=service_account,
        adc=adc,
        api_keys=keys,
        projects=projects,
        project_names=names,
        without_keys=without,
        **transport(r),
    )
