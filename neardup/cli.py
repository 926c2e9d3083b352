"""`neardup`: the command line, a thin layer over `neardup.api`."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import click

from neardup.clean import ACTIONS
from neardup.indexer.autoencoder import AutoencoderConfig
from neardup.indexer.embedders import VECTOR_FEATURES
from neardup.indexer.hashes import HASHES
from neardup.indexer.workers import cores
from neardup.search.features import check_feature
from neardup.search.pasted import CUTTING, SEARCHING
from neardup.storage.catalog import MAX_ID
from neardup.storage.errors import NeardupError
from neardup.storage.schema import damage

from . import api
from .config import DEFAULT_DB, DEFAULT_K


class CliError(click.ClickException):
    """Printed as `error: …` on stderr, exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _message(error: NeardupError) -> str:
    return f"{error}; {error.hint}" if error.hint else str(error)


class _Group(click.Group):
    """Errors a user can cause and act on (`NeardupError`) print as one `error: …` line;
    anything else is a bug and shows its traceback."""

    def invoke(self, ctx: click.Context):
        # a file name that is not valid UTF-8 is printed as its own bytes on stdout (scripts
        # get the exact path) and escaped on stderr (people get a readable message)
        sys.stdout.reconfigure(errors="surrogateescape")
        sys.stderr.reconfigure(errors="backslashreplace")
        try:
            return super().invoke(ctx)
        except NeardupError as e:
            raise CliError(_message(e)) from e
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            # a bug, or a damaged catalog that SQLite did not notice until now (a flipped
            # byte in a value, a row an index misses): tell the two apart before a traceback
            db = ctx.meta.get(_DB_KEY)
            if db is not None and (found := damage(Path(db))):
                raise CliError(f"catalog {db} is damaged (SQLite's integrity check: {' '.join(found.split())[:300]}); "
                               "restore it from a backup, or move it aside and index again") from e
            raise


AE_DEFAULTS = AutoencoderConfig()
SHIPPED = [name for name, f in VECTOR_FEATURES.items() if not f.trained]
TRAINED = [name for name, f in VECTOR_FEATURES.items() if f.trained]
BY_HELP = (f"auto, or one feature: {' '.join(HASHES)}, and {' or '.join(VECTOR_FEATURES)} when the catalog has "
           "them (`neardup stats` lists them).")

_DB_KEY = "neardup.db"  # where --db is kept for the error handler (ctx.meta is shared by all contexts)


def _remember_db(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    ctx.meta[_DB_KEY] = value
    return value


db_option = click.option(
    "--db", default=DEFAULT_DB, show_default=True, envvar="NEARDUP_DB", show_envvar=True, callback=_remember_db,
    help="Catalog: a file (SQLite; FAISS index files are kept beside it) or a PostgreSQL URL, "
         "postgresql+psycopg://user@host/dbname (docs/DISTRIBUTED.md).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neardup")
def main() -> None:
    """Find near-duplicate images: index a collection, search it, list duplicate groups.

    \b
      neardup index ~/Pictures            # build or update ./neardup.db
      neardup search photo.jpg            # the 10 most similar images
      neardup duplicates --format html --output dupes.html
      neardup clean --action move --to ~/dupes --apply   # then: neardup undo
      neardup stats
      neardup serve                       # the web app on http://127.0.0.1:8765/
      neardup train autoencoder           # then search --by autoencoder
    """


class _Bar:
    """tqdm on stderr (files/s and ETA) behind the pipeline's Progress interface; `units`: the
    unit of a stage whose label counts something else than `unit`."""

    def __init__(self, quiet: bool, unit: str = "file", units: dict[str, str] | None = None) -> None:
        self.quiet, self.bar, self.unit, self.units = quiet, None, unit, units or {}

    def start(self, total: int, label: str = "") -> None:
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(total=total, unit=self.units.get(label, self.unit), desc=label or None,
                        disable=self.quiet or total == 0, file=sys.stderr, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@main.command()
@click.argument("paths", nargs=-1, required=True)
@db_option
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Decoding processes [default: all cores].")
@click.option("--embedder", type=click.Choice([*SHIPPED, "none", *TRAINED]), default=None,
              help=f"Learned embedding to compute besides the hashes: {' or '.join(SHIPPED)} or none is fixed when the "
                   "catalog is created [default: cnn if installed, else none]; "
                   f"{' or '.join(TRAINED)} embeds with the model trained by `neardup train` (done by every index run "
                   "once one is trained).")
@click.option("--reembed", is_flag=True, help="Switch an existing catalog to another --embedder, recomputing its vectors.")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Decode, hash and embed on a Dask cluster: a scheduler's address (tcp://host:8786) or local:N "
                   "(N worker processes here). Workers must see PATHS at the same paths (docs/DISTRIBUTED.md).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--exact-below", type=click.IntRange(min=0), default=None,
              help="Search indexes are exact below this many images, approximate (tuned to recall@10 >= 0.99) "
                   "above; saved in the catalog [default: 100000].")
@click.option("--memory-budget", type=str, default=None, metavar="SIZE",
              help="Memory one approximate index may take, e.g. 512M or 4G; saved in the catalog [default: 2G].")
def index(paths: tuple[str, ...], db: str, workers: int | None, embedder: str | None, reembed: bool,
          cluster: str | None, quiet: bool, exact_below: int | None, memory_budget: str | None) -> None:
    """Index the images under PATHS (folders, recursively, or files).

    New and changed files are decoded and hashed; unchanged files are skipped (but for those
    an older neardup decoded otherwise, read again once after an upgrade); files that
    disappeared are dropped from the catalog; moved files are recognised by content.
    The catalog is created on first use. Safe to interrupt: run it again to finish.

    \b
    Examples:
      neardup index ~/Pictures /mnt/photos --db photos.db
      neardup index ~/Pictures --embedder autoencoder   # after neardup train autoencoder
      neardup index /mnt/photos --db postgresql+psycopg://neardup@db/photos --cluster tcp://sched:8786
    """
    for p in paths:
        if not os.path.lexists(Path(p).expanduser()):
            raise CliError(f"no such file or folder: {p}")
    workers = _workers(workers)
    trained = embedder in TRAINED
    _stop_on_signals()
    with api.open(db, create=True, embedder=None if trained else embedder, reembed=reembed) as cat:
        if trained:
            check_feature(cat.catalog, embedder)
        if exact_below is not None or memory_budget is not None:
            cat.set_index_policy(exact_below=exact_below,
                                 memory_budget=None if memory_budget is None else _bytes(memory_budget))
        _announce_compile(cat)
        # this process has run no FAISS/OpenCV/TensorFlow code yet, so workers may be forked
        report = cat.index(paths, workers=workers, progress=_Bar(quiet), fork=True, cluster=cluster)
    rate = report.decoded / report.seconds if report.seconds else 0.0
    if report.interrupted:
        click.echo("interrupted: what was indexed is saved; run the same command again to finish", err=True)
        sys.exit(130)
    if report.decoded == 0:
        click.echo(f"nothing to decode: {report.unchanged} files unchanged", err=True)
    speed = f" ({rate:.1f} files/s)" if report.decoded else ""
    click.echo(
        f"indexed in {report.seconds:.1f} s{speed}: {report.new} new, {report.changed} changed, "
        f"{report.unchanged} unchanged, {report.moved} moved, {report.removed} removed, {report.failed} failed"
        + (f", {report.embedded} embedded" if report.embedded else ""),
        err=True,
    )
    if report.redecoded:
        files = "1 unchanged file" if report.redecoded == 1 else f"{report.redecoded} unchanged files"
        click.echo(f"{files} read again, which an older neardup decoded otherwise "
                   "(turned TIFFs, colour profiles, multi-picture JPEGs)", err=True)
    if report.failed:
        click.echo(f"{report.failed} files could not be read; `neardup stats --db {db}` lists why", err=True)


def _bytes(text: str) -> int:
    """'512M' -> 536870912, '4G' -> 4 GiB, '1000000' -> bytes as given."""
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:].upper(), 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise CliError(f"--memory-budget takes a size such as 512M or 4G, got {text!r}") from None


def _workers(asked: int | None) -> int:
    """Worker processes: one per core available to us by default; more would only contend
    for the cores (and each holds its own memory), so a larger --workers is capped, with a word."""
    available = cores()
    if asked is not None and asked > available:
        click.echo(f"--workers {asked} is more than the {available} cores available; using {available}", err=True)
    return min(asked or available, available)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP end an index run as Ctrl-C does: the batch in hand is written and the
    workers stop, so the next run finishes the job."""
    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), interrupt)


def _announce_compile(cat: api.Collection) -> None:
    """Say why the first CNN use on a machine pauses (compiling the network for LiteRT)."""
    if "cnn" in cat.features() and getattr(cat.embedder("cnn"), "compiles_on_first_use", False):
        click.echo("preparing the CNN for this machine (once, about 10 s) ...", err=True)


def _queries(items: tuple[str, ...]) -> list[str]:
    from neardup.indexer.walk import walk

    out = []
    for q in items:
        p = Path(q).expanduser()
        if not p.exists():
            raise CliError(f"no such file or folder: {q}")
        found = [q] if p.is_file() else list(walk([p]).files)
        if not found:
            raise CliError(f"no images in {q}")
        out += found
    return out


@main.command("search")
@click.argument("queries", nargs=-1, required=True)
@db_option
@click.option("-k", type=click.IntRange(min=1), default=DEFAULT_K, show_default=True, help="Results per query.")
@click.option("--by", default="auto", show_default=True, help=BY_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per query per line.")
def search_cmd(queries: tuple[str, ...], db: str, k: int, by: str, as_json: bool) -> None:
    """Find the images most like each QUERY (an image file, or a folder of them).

    The query need not be in the catalog. Scores are higher for more similar images (1.0 =
    identical). With --json each line is {"query", "results": [{"path", "score", "distance", "by"}]}.

    \b
    Examples:
      neardup search holiday.jpg -k 5
      neardup search new_photos/ --by phash256 --json
    """
    from neardup.indexer.decode import UnreadableImageError

    paths = _queries(queries)
    with api.open(db, readonly=None) as cat:
        check_feature(cat.catalog, by)
        if by in ("auto", "cnn"):
            _announce_compile(cat)
        failed = 0
        for q in paths:
            try:
                matches = cat.search(q, k=k, by=by)
            except UnreadableImageError as e:
                click.echo(f"error: {q}: {e}", err=True)
                failed += 1
                continue
            results = [{"path": m.path, "score": round(m.score, 6), "distance": m.distance, "by": m.by} for m in matches]
            if as_json:
                click.echo(json.dumps({"query": q, "results": results}))
            else:
                click.echo(f"{q}")
                for n, r in enumerate(results, 1):
                    click.echo(f"  {n:>2}. {r['score']:.3f}  {r['path']}")
    if failed:
        sys.exit(1)


@main.command()
@db_option
@click.option("--by", default="auto", show_default=True, help=BY_HELP)
@click.option("--threshold", type=float, default=None,
              help="For a hash: max Hamming distance in bits (inclusive). For cnn or autoencoder: min cosine. "
                   "For auto: min score in [0, 1]. [default: per feature]")
@click.option("--strict", is_flag=True, help="Complete linkage: every pair in a group must match (no A~B~C chains).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write to FILE instead of stdout.")
@click.option("--prefer", multiple=True, type=click.Path(file_okay=False),
              help="A folder whose files win the keeper (repeatable).")
@click.option("--not-duplicate", "not_duplicate", nargs=2, type=click.Path(dir_okay=False), default=None,
              metavar="A B", help="Record that images A and B are not duplicates (never grouped again), then list.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes verifying candidate pairs (--by auto) [default: all cores].")
def duplicates(db: str, by: str, threshold: float | None, strict: bool, fmt: str, output: str | None,
               prefer: tuple[str, ...], not_duplicate: tuple[str, str] | None, workers: int | None) -> None:
    """List groups of near-duplicate images, each with a suggested keeper and why.

    The keeper is the likeliest original: no frame or window around the picture, not an
    enlargement of a smaller member, closest to the other members, least noise, not blurred,
    not a lossless re-save or a stretch, camera EXIF and earliest capture, then resolution and
    size (`neardup keeper` shows and orders the rules). Exact copies are always grouped. An image that contains pictures of several
    groups (a collage) is listed as containing them and joins none. Nothing is deleted or moved.
    While the catalog and the options stay the same, a second run reuses the groups, and the
    table, JSON or CSV text, the first one stored (beside the catalog: photos.db -> photos.reports/),
    unless the first could not read some files (it says so): those are tried again.

    \b
    Examples:
      neardup duplicates
      neardup duplicates --by pdq --threshold 20 --format csv -o dupes.csv
      neardup duplicates --format html -o dupes.html
      neardup duplicates --prefer ~/Pictures/camera
      neardup duplicates --not-duplicate a.jpg b.jpg
    """
    with api.open(db, readonly=None if not not_duplicate else False) as cat:
        checked = _checked_output(cat, output) if output else None
        if not_duplicate:
            cat.not_duplicate(*not_duplicate)
            click.echo(f"recorded: {not_duplicate[0]} and {not_duplicate[1]} are not duplicates", err=True)
        bar = _Bar(quiet=False, unit="pair", units={SEARCHING: "image", CUTTING: "image"})  # regions count images
        try:
            found = cat.duplicate_text(fmt, by=by, threshold=threshold, strict=strict, prefer=prefer,
                                       workers=_workers(workers), progress=bar)
        finally:
            bar.close()
        if found.evidence is not None:
            click.echo(f"{found.evidence.summary()} ({found.evidence.seconds:.1f} s)", err=True)
        if output:
            _write_output(cat, output, found.text, checked=checked)
            click.echo(f"{found.groups} groups written to {output}", err=True)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(found.text)


@main.command()
@db_option
@click.option("--by", default="auto", show_default=True, help=BY_HELP)
@click.option("--threshold", type=float, default=None, help="As for `neardup duplicates`. [default: per feature]")
@click.option("--strict", is_flag=True, help="Complete linkage: every pair in a group must match.")
@click.option("--action", type=click.Choice(ACTIONS), default="trash", show_default=True,
              help="trash: the desktop trash; move: into --to; hardlink/symlink: replace an exact copy by a link "
                   "to its keeper; delete: permanently (needs --yes).")
@click.option("--to", type=click.Path(file_okay=False), default=None,
              help="With --action move: the folder copies go to, each keeping its path relative to its indexed "
                   "folder. Must not lie inside an indexed folder.")
@click.option("--protect", multiple=True, type=click.Path(file_okay=False),
              help="A folder whose files are never acted on and win the keeper (repeatable).")
@click.option("--include-near", is_flag=True, help="Let hardlink/symlink replace near copies too (changes their bytes).")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), default=None,
              help="Write the plan as JSON to FILE (edit it: change a keeper, drop a group) instead of printing it.")
@click.option("--apply", "apply_plan", is_flag=False, flag_value="", default=None, metavar="[PLAN]",
              help="Carry out the plan: the one in PLAN (a file from --plan), or, alone, a fresh one.")
@click.option("--yes", is_flag=True, help="Confirm --action delete, which cannot be undone.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def clean(db: str, by: str, threshold: float | None, strict: bool, action: str, to: str | None,
          protect: tuple[str, ...], include_near: bool, plan_file: str | None, apply_plan: str | None, yes: bool,
          as_json: bool, quiet: bool) -> None:
    """Act on duplicate groups: keep each group's keeper, trash (or move, link, delete) the rest.

    Without --apply nothing changes: the plan is printed (or written with --plan FILE).
    Every action is journaled in the catalog; `neardup undo` puts files back. Files that
    changed since planning are skipped, and no group ever loses its last member.

    \b
    Examples:
      neardup clean                                   # dry run: what would go, how much space
      neardup clean --action move --to ~/dupes --apply
      neardup clean --plan plan.json                  # review or edit, then:
      neardup clean --apply plan.json
      neardup clean --protect ~/Pictures/originals --apply
    """
    from neardup.clean.report import render_applied, render_plan

    with api.open(db) as cat:
        checked = _checked_output(cat, plan_file) if plan_file else None
        if apply_plan:
            plan = cat.read_plan(_read_file(apply_plan))
        else:
            plan = cat.plan_clean(by=by, threshold=threshold, strict=strict, action=action, to=to,
                                  protect=protect, include_near=include_near)
        if plan_file:
            _write_output(cat, plan_file, plan.to_json(), checked=checked)
            click.echo(f"plan written to {plan_file}: {len(plan.groups)} groups, {len(list(plan.actions()))} files; "
                       f"apply it with: neardup clean --db {db} --apply {plan_file}", err=True)
            return
        if apply_plan is None:
            click.echo(plan.to_json() if as_json else render_plan(plan), nl=not as_json)
            if not as_json:
                click.echo("nothing was changed: add --apply to carry this out", err=True)
            return
        report = cat.apply(plan, yes=yes, progress=_Bar(quiet or as_json))
    click.echo(json.dumps(report.to_dict()) if as_json else render_applied(report), nl=as_json)
    if not as_json:
        click.echo(f"undo with: neardup undo --db {db} --run {report.run_id}", err=True)


@main.command()
@db_option
@click.option("--run", "run_id", type=click.IntRange(1, MAX_ID), default=None, help="The run to undo (`neardup history`). [default: the last]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def undo(db: str, run_id: int | None, as_json: bool) -> None:
    """Put back the files a clean-up run acted on, byte for byte, and turn links back into files.

    A file whose original path is taken again is left where it is, with the reason; run the
    same command again once the path is free.

    \b
    Examples:
      neardup undo
      neardup undo --run 3
    """
    from neardup.clean.report import render_undone

    with api.open(db) as cat:
        report = cat.undo(run_id)
    click.echo(json.dumps(report.to_dict()) if as_json else render_undone(report), nl=as_json)
    if not report.complete:
        sys.exit(1)


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def history(db: str, as_json: bool) -> None:
    """List the clean-up runs of the catalog, newest first.

    \b
    Example:
      neardup history --db photos.db
    """
    from neardup.clean.report import render_history

    with api.open(db, readonly=None) as cat:
        runs = cat.history()
    click.echo(json.dumps([r.to_dict() for r in runs]) if as_json else render_history(runs), nl=as_json)


def _read_file(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from e


def _check_output(cat: api.Collection, path: str) -> str:
    """The real path of an output file the user named; an error if it is the catalog or an
    indexed image. Checked before any work, which may write to the catalog (stored evidence)."""
    target = os.path.realpath(Path(path).expanduser())
    # Indexed paths are stored symlink-free (`indexer.walk`), so resolving the folder of each
    # file of that name finds a folder moved behind a link since. Only files of that name are
    # read: every file's state was most of an unchanged run at a million images (docs/BENCHMARKS.md).
    folder, name = os.path.split(target)
    if target == os.path.realpath(cat.path) or any(
            os.path.realpath(os.path.dirname(indexed)) == folder for indexed in cat.catalog.paths_named(name)):
        raise CliError(f"refusing to overwrite {path}: it is the catalog or an indexed image")
    return target


def _checked_output(cat: api.Collection, path: str) -> tuple[str, str]:
    """`_check_output`, and the catalog's generation it was checked at."""
    generation = cat.catalog.generation()
    return _check_output(cat, path), generation


def _write_output(cat: api.Collection, path: str, text: str | bytes, *, checked: tuple[str, str]) -> None:
    """Write an output file the user named, but never over the catalog or an indexed image.
    Text goes as UTF-8, a file name that is not UTF-8 as its own bytes (as on stdout). The path
    `_checked_output` checked before the work is checked again only if the catalog changed
    since: only a write to it can index a file there, and the check reads every path of that name."""
    target = checked[0] if checked[1] == cat.catalog.generation() else _check_output(cat, path)
    try:
        Path(target).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape"))
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from e


@main.command()
@db_option
@click.option("--order", default=None, metavar="RULES",
              help="Comma-separated rule names to try first, in order (the rest follow in the default order).")
def keeper(db: str, order: str | None) -> None:
    """Show (or reorder) the rules that choose each group's keeper, the likeliest original.

    The first rule that tells the members apart decides; `--prefer DIR` folders always come
    first. The order is stored in the catalog.

    \b
    Examples:
      neardup keeper
      neardup keeper --order camera,earliest
    """
    from neardup.search.keeper import RULES

    with api.open(db, readonly=None if order is None else False) as cat:
        rules = cat.keeper_order([r.strip() for r in order.split(",") if r.strip()] if order else None)
    for n, name in enumerate(rules, 1):
        click.echo(f"{n:>2}. {name:<14} {RULES[name].reason}")


@main.group()
def train() -> None:
    """Train a model on the catalog's own images.

    \b
    Example:
      neardup train autoencoder --db photos.db --epochs 30
    """


@train.command("autoencoder")
@db_option
@click.option("--epochs", type=click.IntRange(min=1), default=AE_DEFAULTS.epochs, show_default=True,
              help="Most epochs; training stops earlier when the validation loss stops improving.")
@click.option("--dim", type=click.IntRange(min=2), default=AE_DEFAULTS.dim, show_default=True, help="Length of the vectors.")
@click.option("--image-size", type=click.IntRange(min=16), default=AE_DEFAULTS.image_size, show_default=True,
              help="Side of the square input in pixels (a multiple of 16).")
@click.option("--seed", type=int, default=AE_DEFAULTS.seed, show_default=True, help="Same images + same seed = same model.")
@click.option("--patience", type=click.IntRange(min=1), default=AE_DEFAULTS.patience, show_default=True,
              help="Epochs without a better validation loss before stopping.")
@click.option("--denoising/--no-denoising", default=AE_DEFAULTS.denoising, show_default=True,
              help="Train on near-duplicate copies (crops, mirrors, JPEG, colour) of each image.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Decoding processes [default: all cores].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def train_autoencoder(db: str, epochs: int, dim: int, image_size: int, seed: int, patience: int,
                      denoising: bool, workers: int | None, quiet: bool) -> None:
    """Train a convolutional autoencoder on the indexed images of the catalog.

    A tenth of the images is held out for validation. The model and two pictures (loss per
    epoch; originals above their reconstructions) are written beside the catalog. Retraining
    replaces the model; its old vectors are dropped, and the next `neardup index` re-embeds.
    Then search with `--by autoencoder`.

    \b
    Example:
      neardup index ~/Pictures --db photos.db
      neardup train autoencoder --db photos.db
      neardup index ~/Pictures --db photos.db --embedder autoencoder
      neardup search photo.jpg --db photos.db --by autoencoder
    """
    config = AutoencoderConfig(dim=dim, image_size=image_size, epochs=epochs, seed=seed, patience=patience,
                               denoising=denoising)
    with api.open(db) as cat:
        epochs_bar = _EpochBar(quiet, epochs)
        try:
            report = cat.train_autoencoder(config, workers=workers, progress=_Bar(quiet), on_epoch=epochs_bar.update)
        finally:
            epochs_bar.close()
    r = report.result
    val = r.history[r.best_epoch - 1][1]
    click.echo(
        f"trained autoencoder v{report.version} on {report.images} images ({r.train_count} training, "
        f"{r.val_count} validation) in {r.seconds:.0f} s: {len(r.history)} epochs"
        + (" (stopped early)" if r.stopped_early else "") + f", kept epoch {r.best_epoch}, validation loss {val:.4f}",
        err=True,
    )
    if report.unreadable:
        click.echo(f"{report.unreadable} indexed files could not be read now and were left out", err=True)
    click.echo(f"model: {report.model}\nplots: {report.loss_plot}, {report.reconstructions}", err=True)
    if report.stale:
        click.echo(f"{report.stale} vectors of the previous autoencoder were dropped; re-embed with: "
                   f"neardup index <folders> --db {db} --embedder autoencoder", err=True)
    else:
        click.echo(f"embed the collection with: neardup index <folders> --db {db} --embedder autoencoder", err=True)


class _EpochBar:
    """One tqdm step per epoch, showing the losses; ETA assumes every epoch runs."""

    def __init__(self, quiet: bool, epochs: int) -> None:
        self.quiet, self.epochs, self.bar = quiet, epochs, None

    def update(self, report) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.epochs, unit="epoch", disable=self.quiet, file=sys.stderr, dynamic_ncols=True)
        self.bar.set_postfix(loss=f"{report.loss:.4f}", val_loss=f"{report.val_loss:.4f}")
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _describe_index(ix) -> str:
    """"exact" or "IVF256,SQ8 (nprobe 16), 12.3 MiB, recall@10 0.995 measured at build"."""
    if not ix.exists or not ix.entries:
        return ""
    size = f"{ix.memory / 2**20:.1f} MiB"
    if ix.kind == "flat":
        return f"exact, {size}" + (" (an inverted file would have scanned every list)" if ix.trained_on else "")
    return f"{ix.kind} (nprobe {ix.nprobe}), {size}, recall@10 {ix.recall:.3f} measured at build"


@main.command()
@db_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stats(db: str, as_json: bool) -> None:
    """Show what the catalog holds, whether its indexes are fresh, and which files failed.

    \b
    Example:
      neardup stats --db photos.db
    """
    with api.open(db, readonly=None) as cat:
        s = cat.stats()
    if as_json:
        click.echo(json.dumps(asdict(s), indent=2, default=str))
        return
    click.echo(f"catalog  {s.path}")
    for key, value in s.counts.items():
        click.echo(f"  {key:<20} {value}")
    click.echo(f"  hashes: {', '.join(s.settings.hashes)}")
    click.echo(f"  keypoints: {s.settings.local_features}" if s.settings.local_features else
               "  keypoints: none (catalog made before neardup stored them: no geometric verification; "
               "index into a new catalog to get it)")
    for model in s.models.values():
        click.echo(f"  {_describe_model(model)}")
    if not s.models:
        click.echo("  vector features: none")
    for ix in s.indexes:
        state = "fresh" if ix.fresh else "stale (rebuilt on next use)" if ix.exists else "not built yet (built on next use)"
        click.echo(f"  index {ix.feature:<10} {ix.entries:>8} entries  {state}  {_describe_index(ix)}")
    if s.roots:
        click.echo(f"  indexed: {', '.join(s.roots)}")
    if s.failures:
        click.echo(f"failed files ({len(s.failures)}):")
        for path, reason in s.failures:
            click.echo(f"  {path}: {reason}")


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback (e.g. 0.0.0.0: every interface) requires a token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one).")
@click.option("--token", default=None,
              help="Require this token with every request [default: none on loopback; elsewhere a new one, printed].")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.001), default=50, show_default=True,
              help="Largest request body (an image to search with) in MB.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Decoding processes of index jobs started from the web app [default: all cores].")
def serve(db: str, host: str, port: int, token: str | None, max_upload_mb: float, workers: int | None) -> None:
    """Serve the catalog as a local web app and a REST API.

    Pages: Search (drop an image), Duplicates (review groups side by side, choose keepers,
    clean up with undo), Collection (counts, failed files, index a folder). The REST API is
    documented at /docs. Runs until Ctrl-C.

    \b
    Examples:
      neardup serve --db photos.db                 # then open http://127.0.0.1:8765/
      neardup serve --port 9000
      neardup serve --host 0.0.0.0 --token s3cret  # reachable from the network, token required
      curl -F file=@holiday.jpg 'http://127.0.0.1:8765/api/search?k=5'
    """
    try:
        from neardup.web.server import bind, run
    except ImportError as e:
        raise CliError(f"the web app needs its dependencies ({e.name} is missing): pip install 'neardup[web]'") from e

    with api.open(db, readonly=None) as cat:
        bound = bind(host, port, token=token, max_upload=round(max_upload_mb * 2**20))
        click.echo(f"neardup serving {cat.path} at {bound.url}")
        if bound.generated_token:
            click.echo(f"token (required beyond loopback): {bound.security.token}; API clients send it as "
                       f"'Authorization: Bearer <token>'", err=True)
        click.echo("REST API documented at /docs; Ctrl-C stops the server", err=True)
        run(cat, bound, workers=workers)


def _describe_model(model) -> str:
    """One line on a vector feature's model: what it is and, when trained here, how."""
    line = f"{model.name}: {model.model_id} v{model.version}, {model.dim}-d"
    if model.training:
        t = model.training
        line += (f", trained {t['trained_at']} on {t['images']} images, "
                 f"validation loss {t['val_loss']:.4f}")
    return line


if __name__ == "__main__":
    main()
