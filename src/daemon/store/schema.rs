//! The layout of the state database and the mapping between its rows and
//! [`TorrentRecord`]s: the SQL, the encodings (u64 as the same 64 bits in
//! an INTEGER, paths as their bytes, tags as a JSON array, file stamps as
//! a blob of fixed-size entries) and the checks a row must pass to be read
//! back. Pure functions on a connection; the thread and the locking are in
//! the parent module.
//!
//! Tables (each indexed only by its primary key):
//! - `torrents`: one row per torrent, every field but the source; the row
//!   the periodic save rewrites.
//! - `sources`: the .torrent bytes or the magnet, apart so that a periodic
//!   save does not rewrite a large .torrent with every period.
//! - `categories`, `kv`: categories, and small values the daemon keeps
//!   (key → bytes).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use ringseed::InfoHash;
use rusqlite::{params, Connection, Row};

use super::super::command::Category;
use super::super::record::{
    FileStamp, Limit, RateLimits, ShareLimits, Source, TorrentRecord, Wanted,
};
use super::SCHEMA_VERSION;

/// Bytes of one file stamp in the `file_stamps` blob: a flag (1 = the
/// file existed), the size (u64 LE), the mtime in ns (i64 LE).
pub const STAMP_BYTES: usize = 17;

/// Tables of version 1.
pub const CREATE_V1: &str = "
CREATE TABLE torrents (
    info_hash BLOB PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    save_path BLOB NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL,
    wanted TEXT NOT NULL,
    force_start INTEGER NOT NULL,
    ratio_limit_kind INTEGER NOT NULL,
    ratio_limit REAL,
    seeding_limit_kind INTEGER NOT NULL,
    seeding_limit INTEGER,
    rate_up INTEGER,
    rate_down INTEGER,
    added_at INTEGER NOT NULL,
    completed_at INTEGER,
    uploaded INTEGER NOT NULL,
    downloaded INTEGER NOT NULL,
    seeding_time_s INTEGER NOT NULL,
    active_time_s INTEGER NOT NULL,
    pieces BLOB,
    file_stamps BLOB NOT NULL,
    moving_to BLOB
);
CREATE TABLE sources (
    info_hash BLOB PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE categories (
    name TEXT PRIMARY KEY NOT NULL,
    save_path BLOB
);
CREATE TABLE kv (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
";

/// `Limit` kinds in the `*_limit_kind` columns.
const LIMIT_GLOBAL: i64 = 0;
const LIMIT_UNLIMITED: i64 = 1;
const LIMIT_VALUE: i64 = 2;

const SOURCE_TORRENT: &str = "torrent";
const SOURCE_MAGNET: &str = "magnet";

/// The same 64 bits, as SQLite stores only signed integers.
fn u64_to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn u64_from_sql(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

pub fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

pub fn path_from(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

pub fn encode_stamps(stamps: &[FileStamp]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stamps.len() * STAMP_BYTES);
    for s in stamps {
        out.push(u8::from(s.size.is_some()));
        out.extend_from_slice(&s.size.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&s.mtime_ns.to_le_bytes());
    }
    out
}

pub fn decode_stamps(blob: &[u8]) -> Result<Vec<FileStamp>, String> {
    if blob.len() % STAMP_BYTES != 0 {
        return Err(format!(
            "file stamps of {} bytes (a multiple of {STAMP_BYTES} expected)",
            blob.len()
        ));
    }
    let mut out = Vec::with_capacity(blob.len() / STAMP_BYTES);
    for chunk in blob.chunks_exact(STAMP_BYTES) {
        let mut size = [0u8; 8];
        size.copy_from_slice(&chunk[1..9]);
        let mut mtime = [0u8; 8];
        mtime.copy_from_slice(&chunk[9..17]);
        let size = match chunk[0] {
            0 => None,
            1 => Some(u64::from_le_bytes(size)),
            f => return Err(format!("a file stamp with flag {f} (0 or 1 expected)")),
        };
        out.push(FileStamp {
            size,
            mtime_ns: i64::from_le_bytes(mtime),
        });
    }
    Ok(out)
}

/// Creates the tables (on an empty database) or checks the version;
/// `Err` carries the message for the user.
pub fn prepare(conn: &mut Connection) -> Result<(), String> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "written by a newer ringseed (schema version {version}; this one knows up to \
             {SCHEMA_VERSION}): upgrade ringseed or move the file away"
        ));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if version < 0 {
        return Err(format!("schema version {version} is not one of ringseed's"));
    }
    // Version 0: a new, empty file, unless something else made it.
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let tables: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if tables != 0 {
        return Err(
            "not ringseed's database (it has tables but no schema version): move it away"
                .to_string(),
        );
    }
    tx.execute_batch(CREATE_V1).map_err(|e| e.to_string())?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}

const UPSERT_TORRENT: &str = "INSERT OR REPLACE INTO torrents (info_hash, name, save_path, \
    category, tags, wanted, force_start, ratio_limit_kind, ratio_limit, seeding_limit_kind, \
    seeding_limit, rate_up, rate_down, added_at, completed_at, uploaded, downloaded, \
    seeding_time_s, active_time_s, pieces, file_stamps, moving_to) VALUES (?1, ?2, ?3, ?4, ?5, \
    ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)";

/// Writes the source only when it differs, so that a `put` after a tag
/// change does not rewrite a large .torrent.
const UPSERT_SOURCE: &str = "INSERT INTO sources (info_hash, kind, data) VALUES (?1, ?2, ?3) \
    ON CONFLICT (info_hash) DO UPDATE SET kind = excluded.kind, data = excluded.data \
    WHERE kind IS NOT excluded.kind OR data IS NOT excluded.data";

/// Inserts or replaces a torrent (both tables); the caller holds the
/// transaction.
pub fn put(conn: &Connection, rec: &TorrentRecord) -> rusqlite::Result<()> {
    let tags = serde_json::to_string(&rec.tags).unwrap_or_else(|_| "[]".to_string());
    let (ratio_kind, ratio) = match rec.share_limits.ratio {
        Limit::Global => (LIMIT_GLOBAL, None),
        Limit::Unlimited => (LIMIT_UNLIMITED, None),
        Limit::Value(v) => (LIMIT_VALUE, Some(v)),
    };
    let (seeding_kind, seeding) = match rec.share_limits.seeding_time_s {
        Limit::Global => (LIMIT_GLOBAL, None),
        Limit::Unlimited => (LIMIT_UNLIMITED, None),
        Limit::Value(v) => (LIMIT_VALUE, Some(u64_to_sql(v))),
    };
    let hash: &[u8] = &rec.info_hash.0;
    conn.prepare_cached(UPSERT_TORRENT)?.execute(params![
        hash,
        rec.name,
        path_bytes(&rec.save_path),
        rec.category,
        tags,
        rec.wanted.as_str(),
        rec.force_start,
        ratio_kind,
        ratio,
        seeding_kind,
        seeding,
        rec.rate_limits.upload.map(u64_to_sql),
        rec.rate_limits.download.map(u64_to_sql),
        rec.added_at,
        rec.completed_at,
        u64_to_sql(rec.uploaded),
        u64_to_sql(rec.downloaded),
        u64_to_sql(rec.seeding_time_s),
        u64_to_sql(rec.active_time_s),
        rec.pieces,
        encode_stamps(&rec.file_stamps),
        rec.moving_to.as_deref().map(path_bytes),
    ])?;
    let (kind, data): (&str, &[u8]) = match &rec.source {
        Source::Torrent(bytes) => (SOURCE_TORRENT, bytes),
        Source::Magnet(uri) => (SOURCE_MAGNET, uri.as_bytes()),
    };
    conn.prepare_cached(UPSERT_SOURCE)?
        .execute(params![hash, kind, data])?;
    Ok(())
}

/// Forgets a torrent (both tables); the caller holds the transaction.
pub fn remove(conn: &Connection, hash: InfoHash) -> rusqlite::Result<()> {
    let key: &[u8] = &hash.0;
    conn.prepare_cached("DELETE FROM torrents WHERE info_hash = ?1")?
        .execute([key])?;
    conn.prepare_cached("DELETE FROM sources WHERE info_hash = ?1")?
        .execute([key])?;
    Ok(())
}

/// Updates a torrent's numbers; false when the torrent is not there.
pub fn update_numbers(
    conn: &Connection,
    hash: InfoHash,
    uploaded: u64,
    downloaded: u64,
    seeding_time_s: u64,
    active_time_s: u64,
    completed_at: Option<i64>,
) -> rusqlite::Result<bool> {
    let key: &[u8] = &hash.0;
    let n = conn
        .prepare_cached(
            "UPDATE torrents SET uploaded = ?2, downloaded = ?3, seeding_time_s = ?4, \
             active_time_s = ?5, completed_at = ?6 WHERE info_hash = ?1",
        )?
        .execute(params![
            key,
            u64_to_sql(uploaded),
            u64_to_sql(downloaded),
            u64_to_sql(seeding_time_s),
            u64_to_sql(active_time_s),
            completed_at,
        ])?;
    Ok(n > 0)
}

/// Records a torrent's had pieces with the stamps of its files.
pub fn update_pieces(
    conn: &Connection,
    hash: InfoHash,
    bits: &[u8],
    stamps: &[FileStamp],
) -> rusqlite::Result<bool> {
    let key: &[u8] = &hash.0;
    let n = conn
        .prepare_cached("UPDATE torrents SET pieces = ?2, file_stamps = ?3 WHERE info_hash = ?1")?
        .execute(params![key, bits, encode_stamps(stamps)])?;
    Ok(n > 0)
}

pub fn exists(conn: &Connection, hash: InfoHash) -> rusqlite::Result<bool> {
    let key: &[u8] = &hash.0;
    let mut stmt = conn.prepare_cached("SELECT 1 FROM torrents WHERE info_hash = ?1")?;
    stmt.exists([key])
}

pub fn put_category(conn: &Connection, c: &Category) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO categories (name, save_path) VALUES (?1, ?2)")?
        .execute(params![c.name, c.save_path.as_deref().map(path_bytes)])?;
    Ok(())
}

pub fn remove_category(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM categories WHERE name = ?1")?
        .execute([name])?;
    Ok(())
}

pub fn put_value(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

pub fn remove_value(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM kv WHERE key = ?1")?
        .execute([key])?;
    Ok(())
}

/// One row that could not be read back: the key as far as it was read,
/// and why.
#[derive(Debug)]
pub struct BadRow {
    /// The info-hash in hex, or a description when it is not 20 bytes.
    pub key: String,
    pub why: String,
}

const SELECT_TORRENTS: &str = "SELECT t.info_hash, t.name, t.save_path, t.category, t.tags, \
    t.wanted, t.force_start, t.ratio_limit_kind, t.ratio_limit, t.seeding_limit_kind, \
    t.seeding_limit, t.rate_up, t.rate_down, t.added_at, t.completed_at, t.uploaded, \
    t.downloaded, t.seeding_time_s, t.active_time_s, t.pieces, t.file_stamps, t.moving_to, \
    s.kind, s.data FROM torrents t LEFT JOIN sources s ON s.info_hash = t.info_hash";

/// Reads every torrent with one statement; rows that do not decode come
/// back apart (the caller logs them).
pub fn load_torrents(conn: &Connection) -> rusqlite::Result<(Vec<TorrentRecord>, Vec<BadRow>)> {
    let mut stmt = conn.prepare(SELECT_TORRENTS)?;
    let mut rows = stmt.query([])?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    while let Some(row) = rows.next()? {
        let hash = match row.get_ref(0)?.as_blob() {
            Ok(b) if b.len() == 20 => {
                let mut h = [0u8; 20];
                h.copy_from_slice(b);
                InfoHash(h)
            }
            Ok(b) => {
                bad.push(BadRow {
                    key: format!("(a key of {} bytes)", b.len()),
                    why: "the info-hash is not 20 bytes".to_string(),
                });
                continue;
            }
            Err(_) => {
                bad.push(BadRow {
                    key: "(a key that is not a blob)".to_string(),
                    why: "the info-hash is not 20 bytes".to_string(),
                });
                continue;
            }
        };
        match decode_torrent(hash, row) {
            Ok(rec) => good.push(rec),
            Err(why) => bad.push(BadRow {
                key: hash.to_hex(),
                why,
            }),
        }
    }
    Ok((good, bad))
}

fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, i: usize, name: &str) -> Result<T, String> {
    row.get(i).map_err(|e| format!("column {name}: {e}"))
}

fn limit_from<T>(kind: i64, value: Option<T>, name: &str) -> Result<Limit<T>, String> {
    match (kind, value) {
        (LIMIT_GLOBAL, _) => Ok(Limit::Global),
        (LIMIT_UNLIMITED, _) => Ok(Limit::Unlimited),
        (LIMIT_VALUE, Some(v)) => Ok(Limit::Value(v)),
        (LIMIT_VALUE, None) => Err(format!("{name}: a value limit without a value")),
        (k, _) => Err(format!("{name}: unknown kind {k}")),
    }
}

fn decode_torrent(info_hash: InfoHash, row: &Row<'_>) -> Result<TorrentRecord, String> {
    let tags_json: String = col(row, 4, "tags")?;
    let tags: BTreeSet<String> =
        serde_json::from_str(&tags_json).map_err(|e| format!("tags are not a JSON list: {e}"))?;
    let wanted_text: String = col(row, 5, "wanted")?;
    let wanted = Wanted::parse(&wanted_text)
        .ok_or_else(|| format!("wanted is {wanted_text:?} (started or stopped expected)"))?;
    let ratio_kind: i64 = col(row, 7, "ratio_limit_kind")?;
    // SQLite keeps a NaN as NULL: a value limit read back as NULL was NaN.
    let ratio: Option<f64> = col(row, 8, "ratio_limit")?;
    let ratio = match (ratio_kind, ratio) {
        (LIMIT_VALUE, None) => Limit::Value(f64::NAN),
        (k, v) => limit_from(k, v, "ratio_limit")?,
    };
    let seeding_kind: i64 = col(row, 9, "seeding_limit_kind")?;
    let seeding: Option<i64> = col(row, 10, "seeding_limit")?;
    let seeding = limit_from(seeding_kind, seeding.map(u64_from_sql), "seeding_limit")?;
    let pieces: Option<Vec<u8>> = col(row, 19, "pieces")?;
    let stamps: Vec<u8> = col(row, 20, "file_stamps")?;
    let file_stamps = decode_stamps(&stamps)?;
    if pieces.is_none() && !file_stamps.is_empty() {
        return Err("file stamps without pieces".to_string());
    }
    let source_kind: Option<String> = col(row, 22, "source kind")?;
    let source_data: Option<Vec<u8>> = col(row, 23, "source data")?;
    let source = match (source_kind.as_deref(), source_data) {
        (Some(SOURCE_TORRENT), Some(bytes)) => Source::Torrent(bytes),
        (Some(SOURCE_MAGNET), Some(bytes)) => Source::Magnet(
            String::from_utf8(bytes).map_err(|_| "the magnet is not UTF-8".to_string())?,
        ),
        (None, _) | (_, None) => return Err("no source (.torrent or magnet) row".to_string()),
        (Some(k), Some(_)) => {
            return Err(format!("source kind {k:?} (torrent or magnet expected)"))
        }
    };
    Ok(TorrentRecord {
        info_hash,
        name: col(row, 1, "name")?,
        source,
        save_path: path_from(col(row, 2, "save_path")?),
        category: col(row, 3, "category")?,
        tags,
        wanted,
        force_start: col(row, 6, "force_start")?,
        share_limits: ShareLimits {
            ratio,
            seeding_time_s: seeding,
        },
        rate_limits: RateLimits {
            upload: col::<Option<i64>>(row, 11, "rate_up")?.map(u64_from_sql),
            download: col::<Option<i64>>(row, 12, "rate_down")?.map(u64_from_sql),
        },
        added_at: col(row, 13, "added_at")?,
        completed_at: col(row, 14, "completed_at")?,
        uploaded: u64_from_sql(col(row, 15, "uploaded")?),
        downloaded: u64_from_sql(col(row, 16, "downloaded")?),
        seeding_time_s: u64_from_sql(col(row, 17, "seeding_time_s")?),
        active_time_s: u64_from_sql(col(row, 18, "active_time_s")?),
        pieces,
        file_stamps,
        moving_to: col::<Option<Vec<u8>>>(row, 21, "moving_to")?.map(path_from),
    })
}

pub fn load_categories(conn: &Connection) -> rusqlite::Result<(Vec<Category>, Vec<BadRow>)> {
    let mut stmt = conn.prepare("SELECT name, save_path FROM categories ORDER BY name")?;
    let mut rows = stmt.query([])?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    while let Some(row) = rows.next()? {
        let name: Result<String, _> = row.get(0);
        let path: Result<Option<Vec<u8>>, _> = row.get(1);
        match (name, path) {
            (Ok(name), Ok(path)) => good.push(Category {
                name,
                save_path: path.map(path_from),
            }),
            (Ok(name), Err(e)) => bad.push(BadRow {
                key: name,
                why: format!("save_path: {e}"),
            }),
            (Err(e), _) => bad.push(BadRow {
                key: "(a category)".to_string(),
                why: format!("name: {e}"),
            }),
        }
    }
    Ok((good, bad))
}

/// The key/value table.
pub type Values = std::collections::BTreeMap<String, Vec<u8>>;

pub fn load_values(conn: &Connection) -> rusqlite::Result<(Values, Vec<BadRow>)> {
    let mut stmt = conn.prepare("SELECT key, value FROM kv")?;
    let mut rows = stmt.query([])?;
    let mut good = std::collections::BTreeMap::new();
    let mut bad = Vec::new();
    while let Some(row) = rows.next()? {
        let key: Result<String, _> = row.get(0);
        let value: Result<Vec<u8>, _> = row.get(1);
        match (key, value) {
            (Ok(k), Ok(v)) => {
                good.insert(k, v);
            }
            (Ok(k), Err(e)) => bad.push(BadRow {
                key: k,
                why: format!("value: {e}"),
            }),
            (Err(e), _) => bad.push(BadRow {
                key: "(a value)".to_string(),
                why: format!("key: {e}"),
            }),
        }
    }
    Ok((good, bad))
}
