"""Views and models become part of the data model; the catalog gets an identity.

- hashes and vectors gain a `view` column ("image" or "box"): "pdq@box" becomes ("pdq", "box");
- the models behind vector features move from loose settings rows (the CNN's identity inside
  the settings JSON, the autoencoder's "model.autoencoder" record) to the `models` table;
- the folders given to `index` are recorded in `roots` (empty until the next index run);
- the settings keep only what shapes hashes and keypoints; FAISS generations recorded as
  "index.<feature>" rows are dropped (index files are now bound to the catalog by a sidecar);
- the catalog gets a random identity and its generation becomes a random token.

Revision ID: 0002
"""

import json
import uuid

import sqlalchemy as sa
from alembic import op

# 64-bit on PostgreSQL (sizes, mtime_ns); exactly INTEGER, as always, on SQLite.
INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"

_SETTINGS_KEPT = ("hashes", "hash_version", "decode_side", "local_features")


def upgrade() -> None:
    _add_view("hashes", "algo", "bits", 16)
    _add_view("vectors", "model", "data", 32)
    op.create_table(
        "models",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("version", INT, nullable=False),
        sa.Column("dim", INT, nullable=False),
        sa.Column("input_size", INT, nullable=False),
        sa.Column("options", sa.String, nullable=False),
        sa.Column("file", sa.String),
        sa.Column("sha256", sa.String(64)),
        sa.Column("training", sa.String),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "roots",
        sa.Column("path", sa.String, primary_key=True),
        sa.Column("indexed_at", sa.DateTime, nullable=False),
    )
    _move_settings()


def _add_view(table: str, name: str, payload: str, width: int) -> None:
    """Rebuild `table` with `view` in its primary key, splitting "name@box" names."""
    op.create_table(
        f"{table}_new",
        sa.Column("image_id", INT, sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(name, sa.String(width), primary_key=True),
        sa.Column("view", sa.String(8), primary_key=True),
        sa.Column(payload, sa.LargeBinary, nullable=False),
    )
    op.execute(
        f"INSERT INTO {table}_new (image_id, {name}, view, {payload}) "
        f"SELECT image_id, CASE WHEN {name} LIKE '%@box' THEN substr({name}, 1, length({name}) - 4) ELSE {name} END, "
        f"CASE WHEN {name} LIKE '%@box' THEN 'box' ELSE 'image' END, {payload} FROM {table}"
    )
    op.drop_index(f"ix_{table}_{name}", table_name=table)
    op.drop_table(table)
    op.rename_table(f"{table}_new", table)
    op.create_index(f"ix_{table}_{name}", table, [name, "view"])


def _move_settings() -> None:
    conn = op.get_bind()
    rows = dict(conn.execute(sa.text("SELECT key, value FROM settings")).all())
    old = json.loads(rows["settings"])
    models = sa.table(
        "models", *(sa.column(c) for c in ("name", "model_id", "version", "dim", "input_size", "options",
                                           "file", "sha256", "training", "created_at")),
    )
    now = sa.func.current_timestamp()
    if old.get("embedder", "none") != "none":
        conn.execute(models.insert().values(
            name=old["embedder"], model_id=old["model_id"], version=old["model_version"], dim=old["model_dim"],
            input_size=old["model_input"], options=json.dumps({"pooling": old["model_pooling"]}),
            created_at=now,
        ))
    for key, value in rows.items():
        if key.startswith("model."):
            record = json.loads(value)
            config = record.get("config", {})
            training = {k: v for k, v in record.items() if k not in ("file", "sha256", "version", "model_id")}
            conn.execute(models.insert().values(
                name=key.removeprefix("model."), model_id=record["model_id"], version=record["version"],
                dim=config["dim"], input_size=config["image_size"], options="{}", file=record["file"],
                sha256=record["sha256"], training=json.dumps(training), created_at=now,
            ))
    conn.execute(sa.text("DELETE FROM settings WHERE key LIKE 'model.%' OR key LIKE 'index.%'"))
    kept = {k: old[k] for k in _SETTINGS_KEPT if k in old}
    kept.setdefault("local_features", None)
    kept["hashes"] = list(kept["hashes"])
    conn.execute(sa.text("UPDATE settings SET value = :v WHERE key = 'settings'"), {"v": json.dumps(kept, sort_keys=True)})
    conn.execute(sa.text("UPDATE settings SET value = :v WHERE key = 'generation'"), {"v": json.dumps(uuid.uuid4().hex)})
    conn.execute(sa.text("INSERT INTO settings (key, value) VALUES ('catalog_id', :v)"), {"v": json.dumps(uuid.uuid4().hex)})


def downgrade() -> None:
    raise NotImplementedError("catalogs are upgraded only; keep a copy of the file to go back")
