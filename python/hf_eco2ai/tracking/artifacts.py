"""Artifacts of the Tracelet API: files, serialised objects and external references, each file
with a sha256 checksum that is verified again when the artifact is retrieved.

An artifact is logged as one folder per backend version: its files under their artifact paths,
serialised objects under ``objects/``, and ``manifest.json`` listing every file with its size and
sha256 (see ``write_artifact_folder``/``read_artifact_folder``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.tracking.exceptions import ArtifactChecksumError

MANIFEST_NAME = "manifest.json"
SERIALIZERS = ("json", "yaml", "pickle")
_CHUNK_BYTES = 1 << 20


class ArtifactType(Enum):
    """Semantic artifact types."""

    MODEL = "model"
    CHECKPOINT = "checkpoint"
    WEIGHTS = "weights"
    DATASET = "dataset"
    SAMPLE = "sample"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    VISUALIZATION = "viz"
    REPORT = "report"
    CONFIG = "config"
    CODE = "code"
    CUSTOM = "custom"


def sha256_of(path: Path) -> str:
    """The file's sha256 as hex (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _safe_artifact_path(text: str) -> str:
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ConfigurationError(
            f"artifact_path = {text!r} is invalid: expected a relative path inside the artifact (no '..')"
        )
    return str(path)


@dataclass
class ArtifactFile:
    """A local file in an artifact; ``checksum`` is its sha256 (hex) when added."""

    local_path: str
    artifact_path: str
    description: Optional[str] = None
    size_bytes: int = 0
    checksum: Optional[str] = None


@dataclass
class ArtifactObject:
    """A Python object in an artifact, written with ``serializer`` when logged."""

    obj: Any
    name: str
    serializer: str = "json"
    description: Optional[str] = None


@dataclass
class ArtifactReference:
    """An external file (S3, GCS, HTTP...) recorded by URI only."""

    uri: str
    size_bytes: Optional[int] = None
    description: Optional[str] = None


@dataclass
class ArtifactResult:
    """Where one backend stored an artifact: its ``uri`` there and the ``version`` it got."""

    backend: str
    uri: str
    version: str
    metadata: Dict[str, Any] = field(default_factory=dict)


def _model_framework(model: Any) -> str:
    module = type(model).__module__.split(".")[0]
    return {
        "torch": "pytorch",
        "transformers": "pytorch",
        "lightning": "pytorch",
        "sklearn": "sklearn",
        "tensorflow": "tensorflow",
        "keras": "keras",
        "xgboost": "xgboost",
    }.get(module, module)


class TraceletArtifact:
    """An artifact under construction; every ``add_*`` returns the artifact, so calls chain.

    Raises (from the ``add_*`` methods):
        ConfigurationError: a missing file, an unknown serializer, an invalid artifact path.
    """

    def __init__(self, name: str, artifact_type: ArtifactType, description: Optional[str] = None) -> None:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ConfigurationError(f"artifact name = {name!r} is invalid: expected a non-empty name without '/'")
        if not isinstance(artifact_type, ArtifactType):
            raise ConfigurationError(f"artifact_type = {artifact_type!r} is invalid: expected an ArtifactType member")
        self.name = name
        self.type = artifact_type
        self.description = description
        self.created_at = datetime.now(timezone.utc)
        self.files: List[ArtifactFile] = []
        self.objects: List[ArtifactObject] = []
        self.references: List[ArtifactReference] = []
        self.metadata: Dict[str, Any] = {}

    @property
    def size_bytes(self) -> int:
        """Files plus references of known size, in bytes (objects count once serialised)."""
        return sum(f.size_bytes for f in self.files) + sum(r.size_bytes or 0 for r in self.references)

    def add_file(
        self, local_path: str, artifact_path: Optional[str] = None, description: Optional[str] = None
    ) -> "TraceletArtifact":
        path = Path(local_path)
        if not path.is_file():
            raise ConfigurationError(f"local_path = {str(local_path)!r} is not a file: give an existing file")
        target = _safe_artifact_path(artifact_path or path.name)
        if target == MANIFEST_NAME or any(f.artifact_path == target for f in self.files):
            raise ConfigurationError(f"artifact_path = {target!r} is taken in artifact {self.name!r}: choose another")
        self.files.append(ArtifactFile(str(path), target, description, path.stat().st_size, sha256_of(path)))
        return self

    def add_object(
        self, obj: Any, name: str, serializer: str = "json", description: Optional[str] = None
    ) -> "TraceletArtifact":
        """Add ``obj`` to be written as ``objects/<name>.<serializer>``. ``pickle`` is used only
        when asked for by name: an object that JSON cannot hold raises instead of falling back."""
        if serializer not in SERIALIZERS:
            raise ConfigurationError(
                f"serializer = {serializer!r} is invalid: expected one of {', '.join(map(repr, SERIALIZERS))}"
            )
        _safe_artifact_path(name)
        if serializer == "json":
            try:
                json.dumps(obj, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise ConfigurationError(
                    f"object {name!r} cannot be written as JSON ({error}): pass serializer='yaml' or, for "
                    "objects you trust to load back, serializer='pickle'"
                ) from None
        self.objects.append(ArtifactObject(obj, name, serializer, description))
        return self

    def add_reference(
        self, uri: str, size_bytes: Optional[int] = None, description: Optional[str] = None
    ) -> "TraceletArtifact":
        if not isinstance(uri, str) or "://" not in uri:
            raise ConfigurationError(f"uri = {uri!r} is invalid: expected a URI such as 's3://bucket/key'")
        self.references.append(ArtifactReference(uri, size_bytes, description))
        return self

    def add_model(
        self,
        model: Any,
        framework: Optional[str] = None,
        input_example: Optional[Any] = None,
        description: Optional[str] = None,
    ) -> "TraceletArtifact":
        """Add a model: its framework, class and parameter count go into ``metadata``; a PyTorch
        module's ``state_dict`` is saved with ``torch.save`` (weights only, no pickled code).

        Raises:
            ConfigurationError: a model of another framework (save it to a file and use
                ``add_file``, or ``add_object(model, name, serializer="pickle")``).
        """
        detected = framework or _model_framework(model)
        info: Dict[str, Any] = {"framework": detected, "class": f"{type(model).__module__}.{type(model).__qualname__}"}
        parameters = getattr(model, "parameters", None)
        if callable(parameters):
            info["parameters"] = int(sum(p.numel() for p in parameters()))
        if input_example is not None:
            info["input_example"] = repr(input_example)[:500]
        if detected != "pytorch" or not hasattr(model, "state_dict"):
            raise ConfigurationError(
                f"add_model cannot save a {detected} model ({info['class']}): save it to a file and use "
                "add_file, or add_object(model, name, serializer='pickle')"
            )
        self.metadata.setdefault("models", []).append(info)
        self.objects.append(ArtifactObject(model, "model", "torch_state_dict", description))
        return self

    def serialize_object(self, obj: ArtifactObject, temp_dir: str) -> str:
        """Write ``obj`` under ``temp_dir`` and return the file's path."""
        suffix = {"torch_state_dict": "pt"}.get(obj.serializer, obj.serializer)
        target = Path(temp_dir) / "objects" / f"{obj.name}.{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if obj.serializer == "json":
            target.write_text(json.dumps(obj.obj, indent=2, allow_nan=False), encoding="utf-8")
        elif obj.serializer == "yaml":
            import yaml

            target.write_text(yaml.safe_dump(obj.obj), encoding="utf-8")
        elif obj.serializer == "pickle":
            import pickle

            target.write_bytes(pickle.dumps(obj.obj))
        else:
            import torch

            torch.save(obj.obj.state_dict(), str(target))
        return str(target)

    def to_dict(self) -> Dict[str, Any]:
        """JSON types only (objects by name and serializer)."""
        return {
            "name": self.name,
            "type": self.type.value,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "size_bytes": self.size_bytes,
            "files": [
                {
                    "local_path": f.local_path,
                    "artifact_path": f.artifact_path,
                    "description": f.description,
                    "size_bytes": f.size_bytes,
                    "checksum": f.checksum,
                }
                for f in self.files
            ],
            "objects": [
                {"name": o.name, "serializer": o.serializer, "description": o.description} for o in self.objects
            ],
            "references": [
                {"uri": r.uri, "size_bytes": r.size_bytes, "description": r.description} for r in self.references
            ],
            "metadata": dict(self.metadata),
        }

    def __repr__(self) -> str:
        return (
            f"TraceletArtifact(name={self.name!r}, type={self.type.value!r}, files={len(self.files)}, "
            f"objects={len(self.objects)}, references={len(self.references)})"
        )


def write_artifact_folder(artifact: TraceletArtifact, folder: Path) -> Dict[str, Any]:
    """Copy the files and serialise the objects into ``folder``; write and return the manifest.

    Raises:
        ConfigurationError: a file changed since it was added (its sha256 no longer matches).
    """
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for item in artifact.files:
        target = folder / item.artifact_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.local_path, target)
        checksum = sha256_of(target)
        if checksum != item.checksum:
            raise ConfigurationError(
                f"file {item.local_path!r} changed after it was added to artifact {artifact.name!r} "
                "(its sha256 differs): add it again"
            )
        entries.append(
            {
                "artifact_path": item.artifact_path,
                "size_bytes": target.stat().st_size,
                "sha256": checksum,
                "description": item.description,
                "kind": "file",
            }
        )
    for obj in artifact.objects:
        written = Path(artifact.serialize_object(obj, str(folder)))
        entries.append(
            {
                "artifact_path": written.relative_to(folder).as_posix(),
                "size_bytes": written.stat().st_size,
                "sha256": sha256_of(written),
                "description": obj.description,
                "kind": "object",
                "name": obj.name,
                "serializer": obj.serializer,
            }
        )
    manifest = {**artifact.to_dict(), "entries": entries}
    manifest.pop("files")
    manifest.pop("objects")
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def read_artifact_folder(folder: Path) -> TraceletArtifact:
    """Rebuild an artifact from a retrieved folder, verifying every file's sha256.

    JSON and YAML objects are loaded back; pickled objects and state dicts are returned as files
    (``objects/<name>.<ext>``) so that nothing is unpickled implicitly.

    Raises:
        ArtifactChecksumError: a file is missing or its sha256 differs from the manifest's.
    """
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    artifact = TraceletArtifact(manifest["name"], ArtifactType(manifest["type"]), manifest.get("description"))
    artifact.created_at = datetime.fromisoformat(manifest["created_at"])
    artifact.metadata = dict(manifest.get("metadata") or {})
    for entry in manifest["entries"]:
        path = folder / entry["artifact_path"]
        actual = sha256_of(path) if path.is_file() else "missing"
        if actual != entry["sha256"]:
            raise ArtifactChecksumError(
                f"artifact {manifest['name']!r}: {entry['artifact_path']} has sha256 {actual}, but "
                f"{entry['sha256']} was recorded when it was logged; the stored copy is damaged or was changed"
            )
        if entry["kind"] == "object" and entry["serializer"] in ("json", "yaml"):
            text = path.read_text(encoding="utf-8")
            if entry["serializer"] == "json":
                value = json.loads(text)
            else:
                import yaml

                value = yaml.safe_load(text)
            artifact.objects.append(ArtifactObject(value, entry["name"], entry["serializer"], entry["description"]))
        else:
            artifact.files.append(
                ArtifactFile(
                    str(path), entry["artifact_path"], entry["description"], entry["size_bytes"], entry["sha256"]
                )
            )
    artifact.references = [
        ArtifactReference(r["uri"], r.get("size_bytes"), r.get("description")) for r in manifest.get("references", [])
    ]
    return artifact
