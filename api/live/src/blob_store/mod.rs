//! Where large blobs live — big document snapshots, uploaded files, their thumbnails,
//! zips — behind one interface with two implementations: [`LocalDiskStore`] (development,
//! the default) and [`S3Store`] (S3 and S3-compatible stores).
//!
//! Files go straight between clients and the store through presigned URLs, which only an
//! S3 store can sign: the disk store answers those calls with `Unsupported`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncRead;

mod s3;

pub use s3::{S3Settings, S3Store};

/// A blob read as a stream (bounded memory whatever its size).
pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// A part of a multipart upload, as completing it names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: i32,
    pub etag: String,
}

/// What a presigned GET makes the store answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub content_type: String,
    pub content_disposition: String,
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} needs an S3-compatible blob store (COLLAB_S3_BUCKET)"),
    )
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()>;
    /// The whole blob; `NotFound` when there is none.
    async fn get(&self, key: &str) -> io::Result<Vec<u8>>;
    /// Deleting what is not there succeeds.
    async fn delete(&self, key: &str) -> io::Result<()>;
    /// Its size, or None when there is no such blob.
    async fn size(&self, key: &str) -> io::Result<Option<u64>>;
    /// Its first `len` bytes (fewer when it is shorter).
    async fn head_bytes(&self, key: &str, len: u64) -> io::Result<Vec<u8>>;
    /// The blob as a stream.
    async fn reader(&self, key: &str) -> io::Result<BlobReader>;

    /// Starts a multipart upload; its id.
    async fn start_multipart(&self, key: &str) -> io::Result<String>;
    /// Uploads part `number` (1-based) from here; its ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> io::Result<String>;
    async fn complete_multipart(&self, key: &str, upload: &str, parts: &[Part]) -> io::Result<()>;
    /// Discards an unfinished multipart upload and its parts (unknown ones succeed).
    async fn abort_multipart(&self, key: &str, upload: &str) -> io::Result<()>;

    /// Whether clients can send and fetch blobs straight through presigned URLs.
    fn presigns(&self) -> bool {
        false
    }
    /// A URL a client PUTs the whole blob to.
    async fn presign_put(&self, _key: &str, _expires: Duration) -> io::Result<String> {
        Err(unsupported("uploading files"))
    }
    /// A URL a client PUTs part `number` of a multipart upload to.
    async fn presign_part(
        &self,
        _key: &str,
        _upload: &str,
        _number: i32,
        _expires: Duration,
    ) -> io::Result<String> {
        Err(unsupported("uploading files"))
    }
    /// A URL a client GETs the blob from, answered with `presented`'s headers.
    async fn presign_get(
        &self,
        _key: &str,
        _presented: &Presented,
        _expires: Duration,
    ) -> io::Result<String> {
        Err(unsupported("downloading files"))
    }
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

    async fn size(&self, key: &str) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn head_bytes(&self, key: &str, len: u64) -> io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let file = tokio::fs::File::open(self.path(key)?).await?;
        let mut out = Vec::new();
        file.take(len).read_to_end(&mut out).await?;
        Ok(out)
    }

    async fn reader(&self, key: &str) -> io::Result<BlobReader> {
        Ok(Box::new(tokio::fs::File::open(self.path(key)?).await?))
    }

    async fn start_multipart(&self, key: &str) -> io::Result<String> {
        self.path(key)?;
        let upload = uuid::Uuid::new_v4().simple().to_string();
        tokio::fs::create_dir_all(self.parts_dir(&upload)).await?;
        Ok(upload)
    }

    async fn upload_part(
        &self,
        _key: &str,
        upload: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> io::Result<String> {
        let dir = self.parts_dir(upload_id(upload)?);
        let etag = format!("{:x}", fnv(&bytes));
        tokio::fs::write(dir.join(format!("{number:05}")), bytes).await?;
        Ok(etag)
    }

    async fn complete_multipart(&self, key: &str, upload: &str, parts: &[Part]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let dir = self.parts_dir(upload_id(upload)?);
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let temporary = path.with_extension(format!("tmp-{upload}"));
        let mut out = tokio::fs::File::create(&temporary).await?;
        for part in parts {
            let mut input = tokio::fs::File::open(dir.join(format!("{:05}", part.number))).await?;
            tokio::io::copy(&mut input, &mut out).await?;
        }
        out.flush().await?;
        drop(out);
        tokio::fs::rename(&temporary, &path).await?;
        tokio::fs::remove_dir_all(dir).await
    }

    async fn abort_multipart(&self, _key: &str, upload: &str) -> io::Result<()> {
        match tokio::fs::remove_dir_all(self.parts_dir(upload_id(upload)?)).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

impl LocalDiskStore {
    fn parts_dir(&self, upload: &str) -> PathBuf {
        self.root.join(".uploads").join(upload)
    }
}

/// An upload id this store made (hex), never a path.
fn upload_id(raw: &str) -> io::Result<&str> {
    if !raw.is_empty() && raw.len() <= 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(raw)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid upload id",
        ))
    }
}

/// A part's tag on disk (a checksum of its bytes; FNV-1a is enough to tell parts apart).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
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
        assert_eq!(store.size("a/b.bin").await.unwrap(), None);
        let upload = store.start_multipart("big").await.unwrap();
        let first = store
            .upload_part("big", &upload, 1, vec![1; 3])
            .await
            .unwrap();
        let second = store
            .upload_part("big", &upload, 2, vec![2; 2])
            .await
            .unwrap();
        let parts = [
            Part {
                number: 1,
                etag: first,
            },
            Part {
                number: 2,
                etag: second,
            },
        ];
        store
            .complete_multipart("big", &upload, &parts)
            .await
            .unwrap();
        assert_eq!(store.get("big").await.unwrap(), vec![1, 1, 1, 2, 2]);
        assert_eq!(store.head_bytes("big", 4).await.unwrap(), vec![1, 1, 1, 2]);
        assert_eq!(store.size("big").await.unwrap(), Some(5));
        assert!(store.abort_multipart("big", "../x").await.is_err());
        assert!(!store.presigns());
        std::fs::remove_dir_all(root).ok();
    }
}
