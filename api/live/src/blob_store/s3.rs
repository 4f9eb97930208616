//! Blobs in an S3 bucket, through `aws-sdk-s3`: Amazon S3 itself or any S3-compatible
//! store (an endpoint, path-style addressing). Credentials come from the standard AWS
//! variables and files (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, …).
//! Request checksums are sent only where an operation requires them: the SDK's newer
//! default (a CRC on every upload) breaks several S3-compatible servers.

use std::io;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use super::{BlobReader, BlobStore, Part, Presented};

/// Where the bucket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// An S3-compatible store's URL (`http://127.0.0.1:9000`); None: Amazon S3.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
}

pub struct S3Store {
    client: Client,
    bucket: String,
}

/// An SDK error as an I/O error: a 404 is `NotFound`, the rest says what failed.
fn failed<E>(what: &str, error: SdkError<E, HttpResponse>) -> io::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let kind = if status == Some(404) {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, format!("S3 {what}: {}", DisplayErrorContext(&error)))
}

fn presigning(expires: Duration) -> io::Result<PresigningConfig> {
    PresigningConfig::expires_in(expires)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl S3Store {
    /// Builds the client and checks the bucket answers.
    pub async fn connect(settings: &S3Settings) -> Result<Self, String> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(settings.region.clone()))
            .load()
            .await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        let store = Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
        };
        store
            .client
            .head_bucket()
            .bucket(&store.bucket)
            .send()
            .await
            .map_err(|e| format!("bucket '{}': {}", settings.bucket, failed("HeadBucket", e)))?;
        Ok(store)
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failed("PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> io::Result<Vec<u8>> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("GetObject", e))?;
        let body = object.body.collect().await.map_err(io::Error::other)?;
        Ok(body.into_bytes().to_vec())
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("DeleteObject", e))?;
        Ok(())
    }

    async fn size(&self, key: &str) -> io::Result<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) => match failed("HeadObject", e) {
                e if e.kind() == io::ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn head_bytes(&self, key: &str, len: u64) -> io::Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .await
            .map_err(|e| failed("GetObject", e))?;
        let body = object.body.collect().await.map_err(io::Error::other)?;
        let mut bytes = body.into_bytes().to_vec();
        bytes.truncate(len as usize);
        Ok(bytes)
    }

    async fn reader(&self, key: &str) -> io::Result<BlobReader> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("GetObject", e))?;
        Ok(Box::new(object.body.into_async_read()))
    }

    async fn start_multipart(&self, key: &str) -> io::Result<String> {
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("CreateMultipartUpload", e))?;
        started
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| io::Error::other("S3 CreateMultipartUpload: no upload id"))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> io::Result<String> {
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| failed("UploadPart", e))?;
        part.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| io::Error::other("S3 UploadPart: no ETag"))
    }

    async fn complete_multipart(&self, key: &str, upload: &str, parts: &[Part]) -> io::Result<()> {
        let parts = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failed("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload: &str) -> io::Result<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match failed("AbortMultipartUpload", e) {
                e if e.kind() == io::ErrorKind::NotFound => Ok(()),
                e => Err(e),
            },
        }
    }

    fn presigns(&self) -> bool {
        true
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> io::Result<String> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| failed("presigning PutObject", e))?;
        Ok(request.uri().to_owned())
    }

    async fn presign_part(
        &self,
        key: &str,
        upload: &str,
        number: i32,
        expires: Duration,
    ) -> io::Result<String> {
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .part_number(number)
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| failed("presigning UploadPart", e))?;
        Ok(request.uri().to_owned())
    }

    async fn presign_get(
        &self,
        key: &str,
        presented: &Presented,
        expires: Duration,
    ) -> io::Result<String> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(&presented.content_type)
            .response_content_disposition(&presented.content_disposition)
            .presigned(presigning(expires)?)
            .await
            .map_err(|e| failed("presigning GetObject", e))?;
        Ok(request.uri().to_owned())
    }
}
