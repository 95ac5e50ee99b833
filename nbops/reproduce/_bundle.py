"""A portable bundle of what reproducing a run needs, verified by hash when it is read back.

Layout of the zip: ``manifest.json`` (format, the recipe, dataset records, and the sha256 of
every other member) plus ``notebook.ipynb``, ``executed.ipynb`` (when recorded),
``requirements.txt`` (the recorded packages, pinned), ``blobs/<sha256>`` for dataset and
input contents (left out with ``data=False``) and ``source/...``: the project's files at the
recorded commit with the recorded diff applied (left out with ``source=False``), so the bundle
reproduces where that commit is not, or outside any git repository. The run's record comes
from the store, which holds no secrets (redacted on the way in); the source files are the
committed project's own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from nbops.fileio import staged_file, write_atomic
from nbops.reproduce._recipe import DatasetPin, Recipe, ReproduceError, read_recipe
from nbops.reproduce._workspace import export_source

logger = logging.getLogger(__name__)

#: The bundle format this version writes and reads.
BUNDLE_FORMAT = "nbops-bundle/1"
_MANIFEST = "manifest.json"
_SOURCE = "source/"


def requirements_text(recipe: Recipe) -> str:
    """A ``requirements.txt`` pinned to the packages the run recorded."""
    lines = [f"# packages of nbops run {recipe.run_id} (Python {recipe.python or 'unknown'})"]
    lines += [
        f"{name}=={version}"
        for name, version in sorted(recipe.packages.items())
        if version and version != "[redacted]"
    ]
    return "\n".join(lines) + "\n"


def environment_text(recipe: Recipe) -> str:
    """A conda ``environment.yml`` with the recorded Python and packages (through pip)."""
    pins = requirements_text(recipe).splitlines()[1:]
    body = "".join(f"      - {pin}\n" for pin in pins)
    python = f"  - python={recipe.python}\n" if recipe.python else "  - python\n"
    return (
        f"# packages of nbops run {recipe.run_id}\nname: nbops-{recipe.run_id}\n"
        f"channels:\n  - conda-forge\ndependencies:\n{python}  - pip\n  - pip:\n{body}"
    )


def _blob_digests(store: Any, digest: str, kind: str) -> list[str]:
    if kind == "dir" or digest.startswith("dir:"):
        manifest = digest.removeprefix("dir:")
        return [manifest, *store.blobs.read_manifest(manifest).values()]
    return [digest]


def _source_files(recipe: Recipe) -> dict[str, tuple[bytes, int]]:
    """``{relative path: (bytes, mode)}`` of the project at the recorded commit with the diff
    applied; empty when the run recorded no commit (or a diff cut at its size limit)."""
    if not recipe.commit or recipe.diff_truncated:
        return {}
    with tempfile.TemporaryDirectory(prefix="nbops-export-") as tmp:
        root = Path(tmp)
        try:
            export_source(recipe, root)
        except ReproduceError as exc:
            raise ReproduceError(
                f"cannot bundle the source of run {recipe.run_id}: {exc}; export from a checkout "
                "that has the commit, or with --no-source"
            ) from None
        files = {}
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                logger.warning("bundle of %s: symlink %s left out", recipe.run_id, rel)
            elif path.is_file():
                files[rel] = (path.read_bytes(), path.stat().st_mode & 0o777)
        return files


def export_bundle(
    run: str,
    dest: str | os.PathLike[str],
    *,
    data: bool = True,
    source: bool = True,
    store: Any = None,
) -> Path:
    """Write the bundle of ``run`` to ``dest`` (a ``.zip``), atomically; return its path.

    Args:
        run: Run id or unique prefix.
        dest: The zip file to write.
        data: Include the dataset and input contents (else only their hashes: the other side
            needs them in its store).
        source: Include the project's files at the recorded commit with the recorded diff
            applied (else reproducing needs a checkout that has the commit).
        store: The store, or its folder.

    Raises:
        ReproduceError: A blob is missing, or git cannot export the recorded commit here.
    """
    from nbops.store import open_store

    target = open_store(store)
    run_id = str(target.resolve_id(run))
    recipe = read_recipe(run_id, target)
    members: dict[str, bytes] = {
        "notebook.ipynb": recipe.notebook_text.encode(),
        "requirements.txt": requirements_text(recipe).encode(),
    }
    if recipe.executed_text:
        members["executed.ipynb"] = recipe.executed_text.encode()
    records = []
    for pin in recipe.datasets:
        found = target.datasets.find(pin.name, pin.hash)
        if found:
            records.append(found[0])
    if data:
        wanted = [(p.hash, p.kind) for p in recipe.datasets if p.kind in ("file", "dir")]
        wanted += [(d, "dir" if d.startswith("dir:") else "file") for d in recipe.inputs.values()]
        for digest, kind in wanted:
            try:
                for blob in _blob_digests(target, digest, kind):
                    members[f"blobs/{blob}"] = target.blobs.read_bytes(blob)
            except Exception as exc:  # noqa: BLE001 - any missing or unreadable blob
                raise ReproduceError(
                    f"cannot bundle {digest[:16]} of run {run_id}: {exc}; export with "
                    "--no-data to bundle only the hashes"
                ) from None
    tree = _source_files(recipe) if source else {}
    members.update({_SOURCE + rel: body for rel, (body, _) in tree.items()})
    manifest = {
        "format": BUNDLE_FORMAT,
        "recipe": asdict(recipe),
        "datasets": records,
        "files": {name: hashlib.sha256(body).hexdigest() for name, body in members.items()},
    }
    out = Path(dest)
    with staged_file(out.parent, prefix=f".{out.name}.") as staged:
        with zipfile.ZipFile(staged.file, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, sort_keys=True, indent=1))
            for name, body in sorted(members.items()):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                mode = tree[name.removeprefix(_SOURCE)][1] if name.startswith(_SOURCE) else 0o644
                info.external_attr = (0o100000 | mode) << 16
                zf.writestr(info, body)
        staged.commit(out)
    return out


def write_environment(run: str, dest: str | os.PathLike[str], *, store: Any = None) -> Path:
    """Write ``requirements.txt`` (or ``environment.yml`` when ``dest`` ends so) for ``run``."""
    from nbops.store import open_store

    target = open_store(store)
    recipe = read_recipe(str(target.resolve_id(run)), target)
    out = Path(dest)
    text = (
        environment_text(recipe) if out.suffix in (".yml", ".yaml") else requirements_text(recipe)
    )
    write_atomic(out, text)
    return out


def _tampered(path: Path, why: str) -> ReproduceError:
    return ReproduceError(f"bundle {path} is damaged or was changed ({why}); export it again")


def _safe(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and "" not in parts


def _extract_source(bundle: Path, bodies: dict[str, bytes], modes: dict[str, int]) -> str | None:
    """Write the bundle's ``source/`` files into a new scratch folder; return it (or None)."""
    names = [n for n in bodies if n.startswith(_SOURCE)]
    if not names:
        return None
    folder = Path(tempfile.mkdtemp(prefix="nbops-bundle-source-"))
    try:
        for name in names:
            target = folder / name.removeprefix(_SOURCE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bodies[name])
            target.chmod(modes.get(name) or 0o644)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise ReproduceError(f"cannot unpack the source files of {bundle}: {exc}") from None
    return str(folder)


def import_bundle(path: str | os.PathLike[str], *, store: Any, root: str) -> Recipe:
    """Verify a bundle, load its contents into ``store`` and return its recipe rooted at ``root``.

    The bundle's source files, when it has them, are unpacked into a scratch folder named by
    the recipe's ``source``: the caller removes it when done.

    Raises:
        ReproduceError: The bundle is not one, is of an unknown format, or any member's hash
            does not match the manifest (it was changed after export).
    """
    bundle = Path(path)
    try:
        zf = zipfile.ZipFile(bundle)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ReproduceError(f"{bundle} is not an nbops bundle: {exc}") from None
    with zf:
        try:
            manifest = json.loads(zf.read(_MANIFEST))
        except (KeyError, ValueError) as exc:
            raise _tampered(bundle, f"no readable {_MANIFEST}: {exc}") from None
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ReproduceError(
                f"{bundle} is in format {manifest.get('format')!r}; this nbops reads "
                f"{BUNDLE_FORMAT} (upgrade nbops)"
            )
        listed: dict[str, str] = manifest.get("files") or {}
        present = set(zf.namelist()) - {_MANIFEST}
        if present != set(listed):
            extra = sorted(present ^ set(listed))
            raise _tampered(bundle, f"members added or removed: {', '.join(extra[:5])}")
        bodies: dict[str, bytes] = {}
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        for name, digest in listed.items():
            if name.startswith(_SOURCE) and not _safe(name.removeprefix(_SOURCE)):
                raise _tampered(bundle, f"{name} points outside the project")
            body = zf.read(name)
            if hashlib.sha256(body).hexdigest() != digest:
                raise _tampered(bundle, f"{name} does not have its recorded hash")
            if name.startswith("blobs/") and name.removeprefix("blobs/") != digest:
                raise _tampered(bundle, f"{name} is not named by its hash")
            bodies[name] = body
    for name, body in bodies.items():
        if name.startswith("blobs/"):
            store.blobs.put_bytes(body)
    source = _extract_source(bundle, bodies, modes)
    for record in manifest.get("datasets") or []:
        store.datasets.record(record, None, float(record.get("created_at") or 0.0))
    raw = dict(manifest.get("recipe") or {})
    known = {f.name for f in fields(Recipe)}
    raw = {k: v for k, v in raw.items() if k in known}
    raw["datasets"] = tuple(DatasetPin(**d) for d in raw.get("datasets") or ())
    raw["untracked"] = ()  # the other checkout's working tree is not the run's
    raw["history"] = {k: tuple(tuple(p) for p in v) for k, v in (raw.get("history") or {}).items()}
    raw["secret_parameters"] = tuple(raw.get("secret_parameters") or ())
    raw["root"] = root
    raw["source"] = source
    raw["notebook_text"] = bodies["notebook.ipynb"].decode()
    raw["executed_text"] = bodies["executed.ipynb"].decode() if "executed.ipynb" in bodies else None
    return Recipe(**raw)
