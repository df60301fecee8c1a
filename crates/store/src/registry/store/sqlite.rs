//! The embedded store: one SQLite file in WAL mode.
//!
//! Every write is one `IMMEDIATE` transaction, so uniqueness and the
//! compare-and-swap on a record's version hold against what is committed,
//! and `synchronous=FULL`
//! makes an acknowledged write survive a crash a moment later. Calls run on
//! the blocking pool; the connection mutex is never held across an `.await`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};

use super::AuditLog;
use super::{BatchDeleted, Cipher, Credentials, RegistryStore, StoreError};
use crate::index::{Change, IndexHandle};
use crate::registry::audit::{AuditEntry, AuditPage, AuditQuery};
use crate::registry::{Password, PasswordChange, Registry, RegistrySpec, RegistryStatus};

/// Schema history; append, never edit.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE registries (
            name     TEXT PRIMARY KEY NOT NULL,
            record   TEXT NOT NULL,   -- the Registry as JSON, without password
            password BLOB             -- sealed by Cipher, NULL without credentials
        ) STRICT;",
        ),
        // v2 (0.2.0): every write gives the record the next number of one
        // store-wide sequence, so a version is never reused, not even by a
        // record deleted and created again.
        M::up(
            "ALTER TABLE registries ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
             CREATE TABLE sequence (
                 id    INTEGER PRIMARY KEY CHECK (id = 1),
                 value INTEGER NOT NULL
             ) STRICT;
             INSERT INTO sequence (id, value) VALUES (1, 0);",
        ),
        // v3 (0.2.0): the audit trail, newest last, bounded by count.
        M::up(
            "CREATE TABLE audit (
                 id       INTEGER PRIMARY KEY AUTOINCREMENT,
                 registry TEXT NOT NULL,
                 entry    TEXT NOT NULL   -- the AuditEntry as JSON
             ) STRICT;
             CREATE INDEX audit_by_registry ON audit (registry, id);",
        ),
    ])
}

/// Audit entries kept by default; older ones are dropped.
pub const AUDIT_MAX_ENTRIES: u64 = 100_000;

/// The next version number, inside the write's transaction.
fn next_version(tx: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    tx.query_row(
        "UPDATE sequence SET value = value + 1 WHERE id = 1 RETURNING value",
        [],
        |row| row.get(0),
    )
    .map_err(backend)
}

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    cipher: Cipher,
    index: Arc<IndexHandle>,
    /// Set once after opening ([`SqliteStore::with_audit_max_entries`]).
    audit_max_entries: std::sync::atomic::AtomicU64,
}

impl SqliteStore {
    /// Opens (creating and migrating) the database and publishes its records.
    pub fn open(path: &Path, cipher: Cipher, index: Arc<IndexHandle>) -> Result<Self, StoreError> {
        make_private(path)?;
        let mut conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        // Reads are answered from the index; SQLite's own page cache only
        // serves writes (one row by key), so a small one does (512 KiB
        // instead of the default 2 MiB).
        conn.pragma_update(None, "cache_size", -512)
            .map_err(backend)?;
        migrate(&mut conn, path, &migrations())?;
        let inner = Inner {
            conn: Mutex::new(conn),
            cipher,
            index,
            audit_max_entries: std::sync::atomic::AtomicU64::new(AUDIT_MAX_ENTRIES),
        };
        {
            let conn = inner.lock()?;
            inner.index.publish(&list_records(&conn)?);
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Keeps at most `max` audit entries (at least one); older ones go.
    pub fn with_audit_max_entries(self, max: u64) -> Self {
        self.inner
            .audit_max_entries
            .store(max.max(1), std::sync::atomic::Ordering::Relaxed);
        self
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.lock()?;
            f(&inner, &mut conn)
        })
        .await
        .map_err(|e| StoreError::backend("store task failed", e))?
    }
}

impl Inner {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (the transaction rolls back), so a poisoned lock is safe to reuse.
        Ok(self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Publishes what was just committed. Called with the connection
    /// locked, so snapshots are published in commit order; the index
    /// changes only the entries these records touch.
    fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        self.index.apply(changes);
    }

    /// Creates (`expected` `None`) or replaces the record at `expected`.
    fn write(
        &self,
        conn: &mut Connection,
        spec: RegistrySpec,
        expected: Option<&str>,
    ) -> Result<Registry, StoreError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let existing = match (read_row(&tx, &spec.name)?, expected) {
            (Some(_), None) => return Err(StoreError::AlreadyExists(spec.name)),
            (None, Some(_)) => return Err(StoreError::NotFound(spec.name)),
            (Some((old, _)), Some(expected)) if old.version != expected => {
                return Err(StoreError::Modified(spec.name));
            }
            (existing, _) => existing,
        };

        // The one rule a commit itself must hold, against every other
        // record: the index is exactly what is committed (published under
        // this same lock), so concurrent writers cannot both pass it.
        super::check_default_conflict(&spec, &self.index.load())?;

        let sealed = match (&spec.password, &existing) {
            (PasswordChange::Set(password), _) => Some(
                self.cipher
                    .seal(password.expose().as_bytes(), &spec.name)
                    .map_err(backend)?,
            ),
            (PasswordChange::Clear, _) => None,
            (PasswordChange::Keep, Some((_, blob))) => blob.clone(),
            (PasswordChange::Keep, None) => None,
        };
        let version = next_version(&tx)?;

        let mut record = spec.to_record(
            version.to_string(),
            existing.as_ref().map(|(old, _)| old),
            Utc::now(),
        );
        // What is sealed decides, whatever the spec's password rule said.
        record.has_password = sealed.is_some();
        let json = serde_json::to_string(&record)
            .map_err(|e| StoreError::backend("encoding the record", e))?;
        tx.execute(
            "INSERT INTO registries (name, record, password, version) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET record = excluded.record, password = excluded.password,
                version = excluded.version",
            params![record.name, json, sealed, version],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        self.publish([Change::Upsert(Arc::new(record.clone()))]);
        Ok(record)
    }
}

#[async_trait]
impl RegistryStore for SqliteStore {
    fn namespaces_have_labels(&self) -> bool {
        false
    }

    async fn create(&self, spec: RegistrySpec) -> Result<Registry, StoreError> {
        self.run(move |inner, conn| inner.write(conn, spec, None))
            .await
    }

    async fn replace(&self, spec: RegistrySpec, version: &str) -> Result<Registry, StoreError> {
        let version = version.to_owned();
        self.run(move |inner, conn| inner.write(conn, spec, Some(&version)))
            .await
    }

    async fn set_status(
        &self,
        name: &str,
        status: RegistryStatus,
        version: Option<&str>,
    ) -> Result<Registry, StoreError> {
        let name = name.to_owned();
        let expected = version.map(str::to_owned);
        self.run(move |inner, conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let (mut record, _) =
                read_row(&tx, &name)?.ok_or_else(|| StoreError::NotFound(name.clone()))?;
            if expected.as_ref().is_some_and(|v| *v != record.version) {
                return Err(StoreError::Modified(name));
            }
            record.status = status;
            let version = next_version(&tx)?;
            record.version = version.to_string();
            let json = serde_json::to_string(&record)
                .map_err(|e| StoreError::backend("encoding the record", e))?;
            tx.execute(
                "UPDATE registries SET record = ?2, version = ?3 WHERE name = ?1",
                params![name, json, version],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            inner.publish([Change::Upsert(Arc::new(record.clone()))]);
            Ok(record)
        })
        .await
    }

    // Reads come from the index: it is published under the write lock
    // after each commit, so it is exactly what is committed, and reading it
    // needs neither the lock nor the blocking pool.
    async fn get(&self, name: &str) -> Result<Option<Registry>, StoreError> {
        Ok(self
            .inner
            .index
            .load()
            .record(name)
            .map(|record| Registry::clone(record)))
    }

    async fn list(&self) -> Result<Vec<Registry>, StoreError> {
        Ok(self
            .inner
            .index
            .load()
            .records()
            .map(|record| Registry::clone(record))
            .collect())
    }

    /// The names the records list, from the index's own namespace entries
    /// (patterns are not namespaces to suggest), without copying a record.
    async fn namespace_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.inner.index.load().namespace_names())
    }

    async fn delete(&self, name: &str, version: Option<&str>) -> Result<bool, StoreError> {
        let Some(expected) = version else {
            let deleted = self.delete_many(vec![name.to_owned()]).await?;
            return Ok(!deleted.deleted.is_empty());
        };
        let (name, expected) = (name.to_owned(), expected.to_owned());
        self.run(move |inner, conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            match read_row(&tx, &name)? {
                None => return Ok(false),
                Some((record, _)) if record.version != expected => {
                    return Err(StoreError::Modified(name));
                }
                Some(_) => {}
            }
            tx.execute("DELETE FROM registries WHERE name = ?1", params![name])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            inner.publish([Change::Remove(name)]);
            Ok(true)
        })
        .await
    }

    async fn delete_many(&self, names: Vec<String>) -> Result<BatchDeleted, StoreError> {
        self.run(move |inner, conn| {
            let tx = conn.transaction().map_err(backend)?;
            let mut result = BatchDeleted::default();
            for name in names {
                let removed = tx
                    .execute("DELETE FROM registries WHERE name = ?1", params![name])
                    .map_err(backend)?;
                if removed > 0 {
                    result.deleted.push(name);
                } else {
                    result.not_found.push(name);
                }
            }
            tx.commit().map_err(backend)?;
            inner.publish(result.deleted.iter().cloned().map(Change::Remove));
            Ok(result)
        })
        .await
    }

    async fn credentials(&self, name: &str) -> Result<Option<Credentials>, StoreError> {
        let name = name.to_owned();
        self.run(move |inner, conn| {
            let Some((record, Some(blob))) = read_row(conn, &name)? else {
                return Ok(None);
            };
            let Some(username) = record.username else {
                return Ok(None);
            };
            let plain = inner.cipher.open(&blob, &name).map_err(backend)?;
            let password = String::from_utf8(plain)
                .map_err(|e| StoreError::backend("stored password is not UTF-8", e))?;
            Ok(Some(Credentials {
                username,
                password: Password::new(password),
            }))
        })
        .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry)
            .map_err(|e| StoreError::backend("encoding an audit entry", e))?;
        let registry = entry.registry.clone();
        self.run(move |inner, conn| {
            let max = inner
                .audit_max_entries
                .load(std::sync::atomic::Ordering::Relaxed);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO audit (registry, entry) VALUES (?1, ?2)",
                params![registry, json],
            )
            .map_err(backend)?;
            // Ids only grow (AUTOINCREMENT), so the newest `max` are the
            // ids above the newest minus `max`.
            let newest = tx.last_insert_rowid();
            tx.execute(
                "DELETE FROM audit WHERE id <= ?1",
                params![newest.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX))],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn entries(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let query = query.clone();
        self.run(move |_, conn| {
            let before: Option<i64> = match &query.before {
                Some(position) => Some(position.parse().map_err(|_| {
                    StoreError::corrupt(format!("not an audit position: {position:?}"))
                })?),
                None => None,
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, entry FROM audit
                     WHERE (?1 IS NULL OR registry = ?1) AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3",
                )
                .map_err(backend)?;
            let wanted = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(
                    params![query.registry, before, wanted.saturating_add(1)],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
                )
                .map_err(backend)?;
            let mut page = AuditPage::default();
            let mut last = None;
            for row in rows {
                let (id, json) = row.map_err(backend)?;
                if page.items.len() == query.limit {
                    page.next = last.map(|id: i64| id.to_string());
                    break;
                }
                page.items.push(
                    serde_json::from_str(&json)
                        .map_err(|e| StoreError::backend("corrupt audit entry", e))?,
                );
                last = Some(id);
            }
            Ok(page)
        })
        .await
    }
}

/// The database and its `-wal` and `-shm` files readable by us alone: they
/// hold the records (sealed passwords, but names, users and CAs in clear).
/// SQLite creates the other two with the database file's mode, so creating
/// that one 0600 is enough for a new store; an older store's files are
/// tightened here too.
/// Brings the database at `path` to the newest schema. A database that
/// holds records and needs migrating is first copied, consistently (WAL
/// included), to `<path>.schema-v<N>.bak`: an upgrade can always be undone
/// by putting the copy back and running the older binary. A database newer
/// than this binary knows is refused, unchanged.
fn migrate(conn: &mut Connection, path: &Path, migrations: &Migrations) -> Result<(), StoreError> {
    let failed = |e: rusqlite_migration::Error| {
        StoreError::backend(format!("migrating {}", path.display()), e)
    };
    let pending = migrations.pending_migrations(conn).map_err(failed)?;
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(backend)?;
    if pending > 0 && current > 0 {
        let mut backup = path.as_os_str().to_owned();
        backup.push(format!(".schema-v{current}.bak"));
        let backup = Path::new(&backup);
        if backup.exists() {
            return Err(StoreError::corrupt(format!(
                "{} exists: a backup from an earlier upgrade; move it away to upgrade again",
                backup.display()
            )));
        }
        // Created empty and private first: VACUUM INTO fills an empty file.
        make_private(backup)?;
        conn.execute("VACUUM INTO ?1", params![backup.to_string_lossy()])
            .map_err(|e| StoreError::backend(format!("backing up to {}", backup.display()), e))?;
        tracing::info!(backup = %backup.display(), from = current, migrations = pending, "database backed up before migrating");
    }
    migrations.to_latest(conn).map_err(failed)
}

fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let private = std::fs::Permissions::from_mode(0o600);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::backend(format!("creating {}", path.display()), e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, private.clone()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::backend(
                    format!("making {} private", Path::new(&file).display()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn list_records(conn: &Connection) -> Result<Vec<Registry>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT record, version FROM registries ORDER BY name")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (json, version) = row.map_err(backend)?;
        out.push(decode(&json, version)?);
    }
    Ok(out)
}

/// A password as sealed by the cipher.
type Sealed = Vec<u8>;

/// One record and its sealed password, if it exists.
fn read_row(
    conn: &Connection,
    name: &str,
) -> Result<Option<(Registry, Option<Sealed>)>, StoreError> {
    let row: Option<(String, Option<Vec<u8>>, i64)> = conn
        .query_row(
            "SELECT record, password, version FROM registries WHERE name = ?1",
            params![name],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    row.map(|(json, password, version)| Ok((decode(&json, version)?, password)))
        .transpose()
}

/// A stored record; its version is the row's (records written before
/// versions existed are all at 0 until their next write).
fn decode(json: &str, version: i64) -> Result<Registry, StoreError> {
    let mut record: Registry =
        serde_json::from_str(json).map_err(|e| StoreError::backend("corrupt record", e))?;
    record.version = version.to_string();
    Ok(record)
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend("the database", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trail keeps the newest entries up to its bound, and pages from
    /// the newest.
    #[tokio::test]
    async fn the_audit_trail_is_bounded_and_pages_newest_first() {
        use crate::registry::audit::AuditAction;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(
            &dir.path().join("registries.db"),
            Cipher::from_base64(&base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                [7u8; 32],
            ))
            .expect("key"),
            IndexHandle::new(),
        )
        .expect("open")
        .with_audit_max_entries(3);
        for i in 0..5 {
            let entry = AuditEntry {
                time: Utc::now(),
                actor: "admin".into(),
                action: AuditAction::Update,
                registry: if i % 2 == 0 { "a" } else { "b" }.into(),
                fields: vec![format!("f{i}")],
                succeeded: true,
                code: None,
                message: None,
            };
            store.append(&entry).await.expect("append");
        }
        let fields = |page: &AuditPage| -> Vec<String> {
            page.items.iter().map(|e| e.fields[0].clone()).collect()
        };
        let all = store
            .entries(&AuditQuery {
                registry: None,
                limit: 10,
                before: None,
            })
            .await
            .expect("entries");
        assert_eq!(fields(&all), ["f4", "f3", "f2"], "the newest three");
        assert_eq!(all.next, None);
        let first = store
            .entries(&AuditQuery {
                registry: None,
                limit: 2,
                before: None,
            })
            .await
            .expect("entries");
        assert_eq!(fields(&first), ["f4", "f3"]);
        let second = store
            .entries(&AuditQuery {
                registry: None,
                limit: 2,
                before: first.next.clone(),
            })
            .await
            .expect("entries");
        assert_eq!(
            (fields(&second), second.next),
            (vec!["f2".to_owned()], None)
        );
        let only_a = store
            .entries(&AuditQuery {
                registry: Some("a".into()),
                limit: 10,
                before: None,
            })
            .await
            .expect("entries");
        assert_eq!(fields(&only_a), ["f4", "f2"]);
    }

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    /// A database that needs migrating is copied first; a fresh one is
    /// not; a newer one is refused unchanged.
    #[test]
    fn migrating_backs_up_first_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("registries.db");
        let v1 = Migrations::new(vec![M::up("CREATE TABLE t (x TEXT) STRICT;")]);
        let v2 = Migrations::new(vec![
            M::up("CREATE TABLE t (x TEXT) STRICT;"),
            M::up("ALTER TABLE t ADD COLUMN y TEXT;"),
        ]);
        let backup = dir.path().join("registries.db.schema-v1.bak");

        let mut conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        migrate(&mut conn, &path, &v1).expect("fresh");
        assert!(!backup.exists(), "nothing to back up in a new database");
        conn.execute("INSERT INTO t (x) VALUES ('kept')", [])
            .expect("insert");

        migrate(&mut conn, &path, &v2).expect("upgrade");
        let copy = Connection::open(&backup).expect("the backup opens");
        let (version, kept): (i64, String) = copy
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version), x FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("the backup holds the data as it was");
        assert_eq!((version, kept.as_str()), (1, "kept"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&backup)
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        conn.execute("UPDATE t SET y = 'new'", [])
            .expect("migrated");

        // The older binary meets the newer database: refused, unchanged.
        let error = migrate(&mut conn, &path, &v1).expect_err("too new");
        assert!(error.to_string().contains("migrating"), "{error}");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("version");
        assert_eq!(version, 2);
    }
}
