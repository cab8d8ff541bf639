//! A fresh SQLite database file per test.

use tempfile::TempDir;

/// A SQLite file in its own temporary directory, removed on drop.
#[derive(Debug)]
pub struct TestSqlite {
    pub url: String,
    /// Held so the directory lives as long as the database.
    _dir: TempDir,
}

impl TestSqlite {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Ok(Self { url, _dir: dir })
    }
}
