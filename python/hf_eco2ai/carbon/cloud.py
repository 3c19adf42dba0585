"""Which cloud provider and region this process runs in.

Order: the configuration; then, unless offline, environment hints that the providers' runtimes
set; then the instance-metadata endpoints of AWS, GCP and Azure, asked concurrently within one
total budget (200 ms by default). All three share the link-local base URL ``http://169.254.169.254``;
``cloud_metadata_url`` replaces it, so tests run the probes against a server on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from hf_eco2ai.carbon import bounded_http

logger = logging.getLogger(__name__)

DEFAULT_METADATA_URL = "http://169.254.169.254"
MAX_BUDGET_S = 0.2
_BODY_CAP_BYTES = 4096

# Runtime markers without which AWS_DEFAULT_REGION proves nothing: the AWS CLI reads it on laptops.
_AWS_RUNTIME_MARKERS = (
    "AWS_EXECUTION_ENV",
    "ECS_CONTAINER_METADATA_URI_V4",
    "ECS_CONTAINER_METADATA_URI",
    "AWS_BATCH_JOB_ID",
    "TRAINING_JOB_NAME",
    "SM_CURRENT_HOST",
)
# Azure App Service / Functions set REGION_NAME; elsewhere the name is too generic to trust.
_AZURE_RUNTIME_MARKERS = ("WEBSITE_SITE_NAME", "FUNCTIONS_WORKER_RUNTIME")

_REGION_PATTERNS = {
    "aws": re.compile(r"[a-z]{2}(-[a-z]+)+-\d+"),
    "gcp": re.compile(r"[a-z]+(-[a-z]+)*\d+"),
    "azure": re.compile(r"[a-z]+[a-z0-9]*"),
}


@dataclass(frozen=True)
class CloudLocation:
    """A provider (``aws``, ``gcp``, ``azure``), its region (None if unknown) and how we know."""

    provider: str
    region: Optional[str]
    detected_by: str


def normalise_region(provider: str, raw: str) -> Optional[str]:
    """A region name in the provider's canonical spelling, or None if ``raw`` is not one.

    Zones are reduced to their region (``us-central1-a`` -> ``us-central1``, ``us-east-1a`` ->
    ``us-east-1``); Azure display names lose case and spaces (``West Europe`` -> ``westeurope``).
    """
    text = raw.strip().lower()
    if provider == "azure":
        text = text.replace(" ", "")
    elif provider == "gcp":
        text = re.sub(r"(\d)-[a-z]$", r"\1", text)
    elif provider == "aws":
        text = re.sub(r"(-\d)[a-z]$", r"\1", text)
    pattern = _REGION_PATTERNS.get(provider)
    return text if pattern is not None and pattern.fullmatch(text) else None


def from_environment(environ: Mapping[str, str]) -> Optional[CloudLocation]:
    """The location named by the providers' runtime environment variables, if any."""
    candidates: List[Tuple[str, str, bool]] = [
        ("aws", "AWS_REGION", True),
        ("aws", "AWS_DEFAULT_REGION", any(environ.get(name) for name in _AWS_RUNTIME_MARKERS)),
        ("gcp", "CLOUD_ML_REGION", True),
        ("gcp", "GOOGLE_CLOUD_REGION", True),
        ("gcp", "CLOUD_RUN_REGION", True),
        ("gcp", "FUNCTION_REGION", True),
        ("azure", "AZURE_REGION", True),
        ("azure", "REGION_NAME", any(environ.get(name) for name in _AZURE_RUNTIME_MARKERS)),
    ]
    for provider, name, trusted in candidates:
        raw = environ.get(name, "")
        if trusted and raw.strip():
            region = normalise_region(provider, raw)
            if region is not None:
                return CloudLocation(provider, region, f"env {name}")
    return None


def _get(
    url: str, headers: Mapping[str, str], deadline_s: float, method: str = "GET"
) -> Optional[bounded_http.HttpResponse]:
    try:
        response = bounded_http.request(method, url, headers, deadline_s, max_body_bytes=_BODY_CAP_BYTES)
    except (OSError, ValueError):
        return None
    return response if response.status == 200 else None


def _probe_aws(base_url: str, deadline_s: float) -> Optional[CloudLocation]:
    headers = {}
    token = _get(f"{base_url}/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, deadline_s, "PUT")
    if token is not None:
        headers["X-aws-ec2-metadata-token"] = token.body.decode("ascii", "replace").strip()
    answer = _get(f"{base_url}/latest/meta-data/placement/region", headers, deadline_s)
    region = normalise_region("aws", answer.body.decode("ascii", "replace")) if answer is not None else None
    return CloudLocation("aws", region, "metadata aws") if region is not None else None


def _probe_gcp(base_url: str, deadline_s: float) -> Optional[CloudLocation]:
    answer = _get(f"{base_url}/computeMetadata/v1/instance/zone", {"Metadata-Flavor": "Google"}, deadline_s)
    # Only Google's server sets this header; anything else on that address is not GCP.
    if answer is None or answer.headers.get("metadata-flavor", "").lower() != "google":
        return None
    zone = answer.body.decode("ascii", "replace").strip().rsplit("/", 1)[-1]
    region = normalise_region("gcp", zone)
    return CloudLocation("gcp", region, "metadata gcp") if region is not None else None


def _probe_azure(base_url: str, deadline_s: float) -> Optional[CloudLocation]:
    url = f"{base_url}/metadata/instance/compute/location?api-version=2021-02-01&format=text"
    answer = _get(url, {"Metadata": "true"}, deadline_s)
    region = normalise_region("azure", answer.body.decode("ascii", "replace")) if answer is not None else None
    return CloudLocation("azure", region, "metadata azure") if region is not None else None


_PROBES: Tuple[Callable[[str, float], Optional[CloudLocation]], ...] = (_probe_aws, _probe_gcp, _probe_azure)


def from_metadata(base_url: str = DEFAULT_METADATA_URL, budget_s: float = MAX_BUDGET_S) -> Optional[CloudLocation]:
    """Asks the three providers' metadata endpoints at once; returns within ``budget_s`` (<= 0.2 s).

    The probes run on daemon threads that end by the same deadline. Never raises.
    """
    budget_s = min(max(budget_s, 0.0), MAX_BUDGET_S)
    deadline_s = time.monotonic() + budget_s
    answers: "queue.Queue[Optional[CloudLocation]]" = queue.Queue()
    base_url = base_url.rstrip("/")

    def run(probe: Callable[[str, float], Optional[CloudLocation]]) -> None:
        try:
            answers.put(probe(base_url, deadline_s))
        except Exception:  # noqa: BLE001 - whatever a metadata service answers, detection finds nothing
            answers.put(None)

    for probe in _PROBES:
        threading.Thread(target=run, args=(probe,), name="hf_eco2ai-cloud-probe", daemon=True).start()
    for _ in _PROBES:
        try:
            found = answers.get(timeout=max(deadline_s - time.monotonic(), 0.0))
        except queue.Empty:
            return None
        if found is not None:
            return found
    return None


# What the metadata endpoints answered, per base URL, for the life of the process. Where a process
# runs does not change while it runs, and a probe can cost its whole budget (a default route that
# drops link-local packets), which every run's start in a notebook or a sweep would pay again.
_metadata_answers: Dict[str, Optional[CloudLocation]] = {}
_metadata_answers_lock = threading.Lock()


def from_metadata_once(base_url: str = DEFAULT_METADATA_URL, budget_s: float = MAX_BUDGET_S) -> Optional[CloudLocation]:
    """``from_metadata``, asked once per process and base URL: later calls return the first
    answer (a location, or None: not a cloud, or no answer within the budget)."""
    with _metadata_answers_lock:
        if base_url in _metadata_answers:
            return _metadata_answers[base_url]
    found = from_metadata(base_url, budget_s)
    with _metadata_answers_lock:
        return _metadata_answers.setdefault(base_url, found)


def forget_metadata_answers() -> None:
    """Ask the metadata endpoints again at the next detection (a process restored on another
    machine from a snapshot)."""
    with _metadata_answers_lock:
        _metadata_answers.clear()


def locate(
    *,
    cloud_provider: Optional[str],
    cloud_region: Optional[str],
    offline: bool,
    metadata_url: str = DEFAULT_METADATA_URL,
    budget_s: float = MAX_BUDGET_S,
    environ: Optional[Mapping[str, str]] = None,
) -> Optional[CloudLocation]:
    """Where this process runs: configured values first, then (unless offline) detection.

    A configured provider is never second-guessed; a configured region without a provider is
    ignored by the tables but kept. Detection costs at most ``budget_s``, once per process (the
    metadata answer is kept), and never raises.
    """
    if cloud_provider is not None:
        region = normalise_region(cloud_provider, cloud_region) if cloud_region else None
        return CloudLocation(cloud_provider, region or cloud_region, "config")
    if offline:
        return None
    found = from_environment(os.environ if environ is None else environ)
    if found is None:
        found = from_metadata_once(metadata_url, budget_s)
    if found is not None:
        logger.info("hf-eco2ai: running on %s region %s (%s)", found.provider, found.region, found.detected_by)
    return found
