//! The file service's settings and workers: how an arrived upload is inspected, the
//! `thumbnailer` role (a worker on the file streams that makes thumbnails of images) and
//! the sweep that cleans up uploads never completed.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use collab_commands::{AggregateStore, CommandError, CommandMeta};
use collab_domain::file::{thumbnail_key, Arrived, File, FileCommand, FileEvent, FileState};
use collab_domain::{Actor, EventCodec, RecordedEvent, StreamCategory};
use collab_live::blob_store::{BlobStore, S3Settings};
use collab_projections::worker::{Worker, WorkerError};
use image::{DynamicImage, ImageDecoder, ImageReader};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// Files: where they are stored and the limits on them.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// The bucket for documents' large snapshots and for files (None: the local disk, where
    /// files cannot be uploaded: clients send them straight to S3).
    pub s3: Option<S3Settings>,
    /// Largest file accepted.
    pub max_file_bytes: u64,
    /// Files larger than this are uploaded in parts of this size (S3's minimum is 5 MiB).
    pub part_bytes: u64,
    /// How long upload URLs are valid; an upload not completed within twice this is
    /// aborted and its file recorded abandoned.
    pub upload_expiry: Duration,
    /// How long download URLs are valid.
    pub download_expiry: Duration,
    /// Images larger than this many pixels get no thumbnail (against decompression bombs).
    pub thumbnail_max_pixels: u64,
    /// How long a built zip of the download center is kept.
    pub zip_expiry: Duration,
}

pub mod defaults {
    pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
    pub const PART_BYTES: u64 = 8 * 1024 * 1024;
    pub const UPLOAD_EXPIRY_SECS: u64 = 3600;
    pub const DOWNLOAD_EXPIRY_SECS: u64 = 300;
    pub const THUMBNAIL_MAX_PIXELS: u64 = 50_000_000;
    pub const ZIP_EXPIRY_SECS: u64 = 24 * 3600;
    pub const S3_REGION: &str = "us-east-1";
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            s3: None,
            max_file_bytes: defaults::MAX_FILE_BYTES,
            part_bytes: defaults::PART_BYTES,
            upload_expiry: Duration::from_secs(defaults::UPLOAD_EXPIRY_SECS),
            download_expiry: Duration::from_secs(defaults::DOWNLOAD_EXPIRY_SECS),
            thumbnail_max_pixels: defaults::THUMBNAIL_MAX_PIXELS,
            zip_expiry: Duration::from_secs(defaults::ZIP_EXPIRY_SECS),
        }
    }
}

/// How much of an upload is read to tell its type (office formats name their parts in the
/// first entries of the zip inside).
const SNIFF_BYTES: u64 = 64 * 1024;

/// Looks at what arrived at `key`: its size, the type its first bytes show, whether they
/// are text.
pub async fn inspect(blobs: &dyn BlobStore, key: &str) -> std::io::Result<Arrived> {
    let Some(size) = blobs.size(key).await? else {
        return Ok(Arrived {
            size: None,
            sniffed: None,
            text: false,
        });
    };
    let head = blobs.head_bytes(key, SNIFF_BYTES).await?;
    Ok(Arrived {
        size: Some(size),
        sniffed: infer::get(&head).map(|t| t.mime_type().to_owned()),
        text: looks_like_text(&head),
    })
}

/// UTF-8 (a character cut at the end of the sample is fine) without NUL bytes.
fn looks_like_text(head: &[u8]) -> bool {
    !head.contains(&0)
        && match std::str::from_utf8(head) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        }
}

/// The thumbnails made of each image: longer side at most this many pixels.
pub const THUMBNAIL_SIZES: [u32; 2] = [256, 1024];

/// The image types thumbnails are made of.
const THUMBNAILED: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/tiff",
];

/// One rendered thumbnail.
#[derive(Debug)]
pub struct Rendered {
    pub max_px: u32,
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Decodes an image (within the pixel limit), turns it upright as its EXIF orientation
/// says, and renders one thumbnail per size: JPEG, or PNG when it has transparency. An
/// image smaller than a size is not enlarged.
pub fn render(bytes: &[u8], max_pixels: u64, sizes: &[u32]) -> Result<Vec<Rendered>, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    let mut limits = image::Limits::default();
    // Decoding buffers beyond the pixel limit (4 bytes a pixel, and some room) are refused.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(64 * 1024 * 1024));
    let mut reader = reader;
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode the image: {e}"))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(format!(
            "the image is {width}×{height} pixels; thumbnails are made of images up to {max_pixels} pixels"
        ));
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| format!("cannot read the image's orientation: {e}"))?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode the image: {e}"))?;
    image.apply_orientation(orientation);
    let alpha = image.color().has_alpha();
    sizes
        .iter()
        .map(|&max_px| {
            let scaled = if image.width() <= max_px && image.height() <= max_px {
                image.clone()
            } else {
                image.thumbnail(max_px, max_px)
            };
            let mut out = Vec::new();
            let content_type = if alpha {
                scaled
                    .to_rgba8()
                    .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                    .map_err(|e| format!("cannot encode the thumbnail: {e}"))?;
                "image/png"
            } else {
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
                scaled
                    .to_rgb8()
                    .write_with_encoder(encoder)
                    .map_err(|e| format!("cannot encode the thumbnail: {e}"))?;
                "image/jpeg"
            };
            Ok(Rendered {
                max_px,
                width: scaled.width(),
                height: scaled.height(),
                content_type,
                bytes: out,
            })
        })
        .collect()
}

fn service_meta(name: &str, causation: Option<Uuid>) -> CommandMeta {
    CommandMeta {
        actor: Actor::Service(name.into()),
        correlation_id: Uuid::now_v7(),
        causation_id: causation,
    }
}

/// The `thumbnailer` worker: for each `FileUploaded` image, the thumbnails it lacks, stored
/// in the blob store and recorded (`ThumbnailCreated`); an image that cannot be
/// thumbnailed is recorded once (`ThumbnailFailed`) and never retried. Redelivered events
/// record nothing twice: the file knows its thumbnails.
pub struct Thumbnailer {
    pub aggregates: AggregateStore,
    pub blobs: Arc<dyn BlobStore>,
    pub max_pixels: u64,
}

pub const THUMBNAILER: &str = "thumbnailer";

#[async_trait]
impl Worker for Thumbnailer {
    fn name(&self) -> &'static str {
        THUMBNAILER
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::File]
    }

    async fn handle(&self, event: &RecordedEvent) -> Result<(), WorkerError> {
        let transient = |e: String| WorkerError::Transient(e);
        let FileEvent::FileUploaded(uploaded) =
            FileEvent::decode_recorded(event).map_err(|e| WorkerError::Permanent(e.to_string()))?
        else {
            return Ok(());
        };
        if !THUMBNAILED.contains(&uploaded.content_type.as_str()) {
            return Ok(());
        }
        let started = Instant::now();
        let file_id = event.stream_id.id;
        let file = self
            .aggregates
            .load::<File>(file_id)
            .await
            .map_err(|e| transient(e.to_string()))?
            .aggregate;
        let missing: Vec<u32> = THUMBNAIL_SIZES
            .into_iter()
            .filter(|px| !file.thumbnails().contains_key(px))
            .collect();
        if file.state() != FileState::Uploaded || missing.is_empty() {
            return Ok(());
        }
        let bytes = match self.blobs.get(file.key()).await {
            Ok(bytes) => bytes,
            // Deleted since: nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(transient(e.to_string())),
        };
        let max_pixels = self.max_pixels;
        let sizes = missing.clone();
        let rendered = tokio::task::spawn_blocking(move || render(&bytes, max_pixels, &sizes))
            .await
            .map_err(|e| transient(format!("thumbnail task: {e}")))?;
        let meta = service_meta(THUMBNAILER, Some(event.metadata.event_id.as_uuid()));
        let commands = match rendered {
            Ok(thumbnails) => {
                let mut commands = Vec::new();
                for thumbnail in thumbnails {
                    let key = thumbnail_key(uploaded.workspace_id, file_id, thumbnail.max_px);
                    self.blobs
                        .put(&key, thumbnail.bytes)
                        .await
                        .map_err(|e| transient(e.to_string()))?;
                    commands.push(FileCommand::RecordThumbnail {
                        max_px: thumbnail.max_px,
                        width: thumbnail.width,
                        height: thumbnail.height,
                        key,
                        content_type: thumbnail.content_type.into(),
                    });
                }
                metrics::counter!("collab_thumbnails_total", "outcome" => "created").increment(1);
                commands
            }
            Err(reason) => {
                warn!(file.id = %file_id, %reason, "thumbnailer: no thumbnail");
                metrics::counter!("collab_thumbnails_total", "outcome" => "failed").increment(1);
                vec![FileCommand::RecordThumbnailFailure { reason }]
            }
        };
        for command in commands {
            match self
                .aggregates
                .execute::<File>(file_id, command, &meta, None)
                .await
            {
                Ok(_) | Err(CommandError::Domain(_)) => {}
                Err(e) => return Err(transient(e.to_string())),
            }
        }
        metrics::histogram!("collab_thumbnail_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// Every minute, aborts the uploads not completed within twice the upload URLs' life and
/// records their files abandoned (the `thumbnailer` role does this too).
pub async fn sweep_uploads(
    pool: PgPool,
    aggregates: AggregateStore,
    blobs: Arc<dyn BlobStore>,
    settings: FileSettings,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(60).min(settings.upload_expiry));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(error) = sweep_once(&pool, &aggregates, blobs.as_ref(), &settings).await {
            warn!(%error, "files: sweeping unfinished uploads failed");
        }
    }
}

/// One sweep; how many uploads it abandoned.
pub async fn sweep_once(
    pool: &PgPool,
    aggregates: &AggregateStore,
    blobs: &dyn BlobStore,
    settings: &FileSettings,
) -> anyhow::Result<usize> {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(settings.upload_expiry * 2)
            .unwrap_or(chrono::Duration::hours(2));
    let mut conn = pool.acquire().await?;
    let stale = collab_projections::files::stale_uploads(&mut conn, cutoff, 100).await?;
    drop(conn);
    let mut swept = 0;
    for (file_id, _) in stale {
        let file = aggregates.load::<File>(file_id).await?.aggregate;
        if file.state() != FileState::Pending {
            continue;
        }
        if let Some(upload) = file.upload_id() {
            blobs.abort_multipart(file.key(), upload).await?;
        }
        blobs.delete(file.key()).await?;
        let meta = service_meta("files", None);
        aggregates
            .execute::<File>(file_id, FileCommand::Abandon, &meta, None)
            .await?;
        swept += 1;
    }
    if swept > 0 {
        info!(swept, "files: unfinished uploads cleaned up");
        metrics::counter!("collab_uploads_abandoned_total").increment(swept as u64);
    }
    Ok(swept)
}

/// Where a download's zip lives.
pub fn download_key(id: Uuid) -> String {
    format!("downloads/{id}.zip")
}

/// A zip being built whose worker has not touched it for this long is built again.
const STALE_BUILD: &str = "2 minutes";

/// Attempts at building a zip before it is `failed`.
const ZIP_ATTEMPTS: i32 = 3;

/// The `downloads` role: builds the zips the download center was asked for, one at a
/// time per process (any number of processes: each claims with `SKIP LOCKED`), streaming
/// each file from the blob store into a zip that goes to the blob store as a multipart
/// upload — memory stays at about one part whatever the total — and expires ready zips.
pub async fn run_downloads(
    pool: PgPool,
    aggregates: AggregateStore,
    blobs: Arc<dyn BlobStore>,
    settings: FileSettings,
    shutdown: CancellationToken,
) {
    loop {
        let worked = match next_download(&pool, &aggregates, blobs.as_ref(), &settings).await {
            Ok(worked) => worked,
            Err(error) => {
                warn!(%error, "downloads: cannot claim work");
                false
            }
        };
        if !worked {
            if let Err(error) = expire_downloads(&pool, blobs.as_ref()).await {
                warn!(%error, "downloads: cannot expire zips");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Claims and builds one queued zip; whether there was one.
async fn next_download(
    pool: &PgPool,
    aggregates: &AggregateStore,
    blobs: &dyn BlobStore,
    settings: &FileSettings,
) -> anyhow::Result<bool> {
    let claimed: Option<(Uuid, Vec<Uuid>, i32)> = sqlx::query_as(&format!(
        "UPDATE downloads SET state = 'building', attempts = attempts + 1, bytes_done = 0, \
         updated_at = now() WHERE download_id = (SELECT download_id FROM downloads \
         WHERE state = 'queued' OR (state = 'building' AND updated_at < now() - interval '{STALE_BUILD}') \
         ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING download_id, file_ids, attempts"
    ))
    .fetch_optional(pool)
    .await?;
    let Some((id, files, attempts)) = claimed else {
        return Ok(false);
    };
    let started = Instant::now();
    match build_zip(pool, aggregates, blobs, settings, id, &files).await {
        Ok(bytes) => {
            sqlx::query(
                "UPDATE downloads SET state = 'ready', bytes_done = total_bytes, ready_at = now(), \
                 updated_at = now(), expires_at = now() + $2 WHERE download_id = $1",
            )
            .bind(id)
            .bind(settings.zip_expiry)
            .execute(pool)
            .await?;
            info!(download.id = %id, bytes, "downloads: zip ready");
            metrics::counter!("collab_downloads_total", "outcome" => "ready").increment(1);
            metrics::histogram!("collab_download_build_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        Err(error) => {
            let last = attempts >= ZIP_ATTEMPTS;
            warn!(download.id = %id, %error, last, "downloads: building a zip failed");
            sqlx::query(
                "UPDATE downloads SET state = $2, error = $3, updated_at = now() WHERE download_id = $1",
            )
            .bind(id)
            .bind(if last { "failed" } else { "queued" })
            .bind(error.to_string())
            .execute(pool)
            .await?;
            if last {
                metrics::counter!("collab_downloads_total", "outcome" => "failed").increment(1);
            }
        }
    }
    Ok(true)
}

/// Streams the files into a zip uploaded in parts; the zip's size.
async fn build_zip(
    pool: &PgPool,
    aggregates: &AggregateStore,
    blobs: &dyn BlobStore,
    settings: &FileSettings,
    id: Uuid,
    files: &[Uuid],
) -> anyhow::Result<u64> {
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    let key = download_key(id);
    let upload = blobs.start_multipart(&key).await?;
    let result = async {
        let chunks = crate::routes::export::Chunks::default();
        let mut zip = zip::ZipWriter::new_stream(chunks.clone());
        let part_bytes = settings.part_bytes.max(5 * 1024 * 1024) as usize;
        let mut parts = Vec::new();
        let mut names = std::collections::HashSet::new();
        let mut done: u64 = 0;
        let mut size: u64 = 0;
        let mut buffer = vec![0u8; 256 * 1024];
        for file_id in files {
            let file = aggregates.load::<File>(*file_id).await?.aggregate;
            // Deleted since the request: left out.
            if file.state() != FileState::Uploaded {
                continue;
            }
            let name = unique_name(&mut names, file.filename().map(|f| f.as_str()).unwrap_or("file"));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .large_file(file.declared_size() >= u64::from(u32::MAX));
            zip.start_file(name.as_str(), options)?;
            let mut reader = blobs.reader(file.key()).await?;
            loop {
                let n = reader.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                zip.write_all(&buffer[..n])?;
                done += n as u64;
                if chunks.len() >= part_bytes {
                    let bytes = chunks.take();
                    size += bytes.len() as u64;
                    let number = parts.len() as i32 + 1;
                    let etag = blobs.upload_part(&key, &upload, number, bytes).await?;
                    parts.push(collab_live::blob_store::Part { number, etag });
                    sqlx::query("UPDATE downloads SET bytes_done = $2, updated_at = now() WHERE download_id = $1")
                        .bind(id)
                        .bind(done as i64)
                        .execute(pool)
                        .await?;
                }
            }
        }
        zip.finish()?;
        let rest = chunks.take();
        size += rest.len() as u64;
        let number = parts.len() as i32 + 1;
        let etag = blobs.upload_part(&key, &upload, number, rest).await?;
        parts.push(collab_live::blob_store::Part { number, etag });
        blobs.complete_multipart(&key, &upload, &parts).await?;
        anyhow::Ok(size)
    }
    .await;
    if result.is_err() {
        let _ = blobs.abort_multipart(&key, &upload).await;
    }
    result
}

/// `name`, or `name (2).ext`, … so that no two entries of a zip share a name.
fn unique_name(used: &mut std::collections::HashSet<String>, name: &str) -> String {
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, format!(".{extension}")),
        _ => (name, String::new()),
    };
    let mut n = 1;
    loop {
        let candidate = if n == 1 {
            name.to_owned()
        } else {
            format!("{stem} ({n}){extension}")
        };
        if used.insert(candidate.to_lowercase()) {
            return candidate;
        }
        n += 1;
    }
}

/// Ready zips past their time: deleted from the blob store, recorded `expired`.
async fn expire_downloads(pool: &PgPool, blobs: &dyn BlobStore) -> anyhow::Result<()> {
    let expired: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE downloads SET state = 'expired', updated_at = now() \
         WHERE state = 'ready' AND expires_at < now() RETURNING download_id",
    )
    .fetch_all(pool)
    .await?;
    for id in expired {
        blobs.delete(&download_key(id)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, alpha: bool) -> Vec<u8> {
        let image = if alpha {
            DynamicImage::ImageRgba8(image::RgbaImage::new(width, height))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::new(width, height))
        };
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio_and_never_enlarge() {
        let made = render(&png(2000, 1000, false), 50_000_000, &THUMBNAIL_SIZES).unwrap();
        assert_eq!(
            (made[0].width, made[0].height, made[0].content_type),
            (256, 128, "image/jpeg")
        );
        assert_eq!((made[1].width, made[1].height), (1024, 512));
        let small = render(&png(100, 50, true), 50_000_000, &THUMBNAIL_SIZES).unwrap();
        assert_eq!(
            (small[1].width, small[1].height, small[1].content_type),
            (100, 50, "image/png")
        );
    }

    #[test]
    fn corrupt_and_oversized_images_are_refused_with_a_reason() {
        assert!(render(b"\x89PNG\r\n\x1a\nnot really", 1_000, &[256])
            .unwrap_err()
            .contains("cannot"));
        let big = render(&png(200, 200, false), 10_000, &[256]).unwrap_err();
        assert!(big.contains("200×200"), "{big}");
    }

    #[test]
    fn zip_entries_get_unique_names() {
        let mut used = std::collections::HashSet::new();
        assert_eq!(unique_name(&mut used, "logo.png"), "logo.png");
        assert_eq!(unique_name(&mut used, "Logo.png"), "Logo (2).png");
        assert_eq!(unique_name(&mut used, "logo.png"), "logo (3).png");
        assert_eq!(unique_name(&mut used, "README"), "README");
        assert_eq!(unique_name(&mut used, "readme"), "readme (2)");
    }

    #[test]
    fn text_is_utf8_without_nul_even_when_cut_mid_character() {
        assert!(looks_like_text("héllo".as_bytes()));
        assert!(looks_like_text(&"é".as_bytes()[..1]));
        assert!(!looks_like_text(b"a\0b"));
        assert!(!looks_like_text(&[0xff, 0xfe, 0x41]));
    }
}
