//! A narrow interface to where large blobs (big document snapshots; later, files) live:
//! local disk now, S3 later, behind the same two calls.

use std::io;
use std::path::PathBuf;

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()>;
    async fn get(&self, key: &str) -> io::Result<Vec<u8>>;
    async fn delete(&self, key: &str) -> io::Result<()>;
}

/// Blobs as files under a root directory; writes are atomic (temp file + rename).
pub struct LocalDiskStore {
    root: PathBuf,
}

impl LocalDiskStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        // Keys are ours, but never let one climb out of the root.
        if key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid blob key",
            ));
        }
        Ok(self.root.join(key))
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalDiskStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&temporary, bytes).await?;
        tokio::fs::rename(&temporary, &path).await
    }

    async fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        tokio::fs::read(self.path(key)?).await
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_keys_stay_inside_the_root() {
        let root = std::env::temp_dir().join(format!("collab-blobs-{}", uuid::Uuid::new_v4()));
        let store = LocalDiskStore::new(&root);
        store.put("a/b.bin", vec![1, 2, 3]).await.unwrap();
        assert_eq!(store.get("a/b.bin").await.unwrap(), vec![1, 2, 3]);
        store.delete("a/b.bin").await.unwrap();
        assert!(store.get("a/b.bin").await.is_err());
        assert!(store.put("../escape", vec![]).await.is_err());
        std::fs::remove_dir_all(root).ok();
    }
}
