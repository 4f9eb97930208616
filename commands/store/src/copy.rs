//! Rows written with `COPY … FROM STDIN (FORMAT binary)`: many new rows in one stream,
//! each value in the binary form sqlx binds it in (its `Encode`), instead of an
//! `INSERT … SELECT FROM unnest(…)` whose arrays Postgres first decodes and then expands
//! row by row; COPY also inserts the heap rows a page at a time. The event store appends
//! large batches this way, and read models with a row per event write a page's rows this
//! way. Only for plain inserts: COPY has no `ON CONFLICT`.
//!
//! Only for columns whose binary form sqlx writes whole at encoding time: numbers, text,
//! bytea, uuid, timestamptz, jsonb. sqlx patches a few encodings after it learns the
//! parameter's type (a `json` column's value, arrays and records of custom types), which
//! COPY never does.

use sqlx::encode::IsNull;
use sqlx::postgres::PgArgumentBuffer;
use sqlx::{Encode, PgConnection, Postgres};

/// The binary COPY header: signature, flags, no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows for one `COPY table (columns) FROM STDIN (FORMAT binary)`, built in memory.
pub struct CopyRows {
    statement: String,
    columns: i16,
    buffer: PgArgumentBuffer,
    /// Values written to the current row.
    written: i16,
    rows: usize,
    /// The first value that could not be encoded: `send` fails with it.
    failed: Option<sqlx::error::BoxDynError>,
}

impl CopyRows {
    /// Rows of `table` with these columns; each row must then give one value per column,
    /// in this order, each of the column's type.
    pub fn new(table: &str, columns: &[&str]) -> Self {
        let mut buffer = PgArgumentBuffer::default();
        buffer.extend_from_slice(HEADER);
        Self {
            statement: format!(
                "COPY {table} ({}) FROM STDIN (FORMAT binary)",
                columns.join(", ")
            ),
            columns: i16::try_from(columns.len()).expect("a table has under 1,600 columns"),
            buffer,
            written: 0,
            rows: 0,
            failed: None,
        }
    }

    /// Starts a row.
    pub fn row(&mut self) -> &mut Self {
        self.check_row();
        self.buffer.extend_from_slice(&self.columns.to_be_bytes());
        self.written = 0;
        self.rows += 1;
        self
    }

    /// The row's next value (`None` is NULL).
    pub fn value<'q, T: Encode<'q, Postgres>>(&mut self, value: &T) -> &mut Self {
        let at = self.buffer.len();
        self.buffer.extend_from_slice(&[0; 4]);
        let length = match value.encode_by_ref(&mut self.buffer) {
            Ok(IsNull::No) => match i32::try_from(self.buffer.len() - at - 4) {
                Ok(length) => length,
                Err(_) => {
                    self.failed
                        .get_or_insert_with(|| "a COPY value of 2 GiB or more".into());
                    -1
                }
            },
            Ok(IsNull::Yes) => -1,
            Err(error) => {
                self.failed.get_or_insert(error);
                -1
            }
        };
        if length == -1 {
            self.buffer.truncate(at + 4);
        }
        self.buffer[at..at + 4].copy_from_slice(&length.to_be_bytes());
        self.written += 1;
        self
    }

    /// A row with too few or too many values fails `send` (Postgres would read the next
    /// row's values into it, or refuse the stream with a less telling error).
    fn check_row(&mut self) {
        if self.rows > 0 && self.written != self.columns {
            let message = format!(
                "a row of `{}` has {} of {} values",
                self.statement, self.written, self.columns
            );
            self.failed.get_or_insert_with(|| message.into());
        }
    }

    /// Sends the rows; returns how many were inserted.
    pub async fn send(mut self, conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
        self.check_row();
        if let Some(error) = self.failed {
            return Err(sqlx::Error::Encode(error));
        }
        if self.rows == 0 {
            return Ok(0);
        }
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = conn.copy_in_raw(&self.statement).await?;
        copy.send(self.buffer.as_slice()).await?;
        copy.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_rows_as_binary_copy() {
        let mut rows = CopyRows::new("t", &["a", "b"]);
        rows.row().value(&7i64).value(&None::<String>);
        rows.row().value(&-1i64).value(&Some("hé".to_owned()));
        assert_eq!(rows.statement, "COPY t (a, b) FROM STDIN (FORMAT binary)");
        let mut expected = HEADER.to_vec();
        for (number, text) in [(7i64, None), (-1, Some("hé"))] {
            expected.extend_from_slice(&2i16.to_be_bytes());
            expected.extend_from_slice(&8i32.to_be_bytes());
            expected.extend_from_slice(&number.to_be_bytes());
            match text {
                None => expected.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(text) => {
                    expected.extend_from_slice(&(text.len() as i32).to_be_bytes());
                    expected.extend_from_slice(text.as_bytes());
                }
            }
        }
        assert_eq!(rows.buffer.as_slice(), expected.as_slice());
        assert_eq!(rows.rows, 2);
        assert!(rows.failed.is_none());
    }

    #[test]
    fn a_row_with_a_value_missing_fails_before_anything_is_sent() {
        let mut rows = CopyRows::new("t", &["a", "b"]);
        rows.row().value(&7i64);
        rows.row().value(&8i64).value(&9i64);
        let failed = rows.failed.as_ref().map(|e| e.to_string());
        assert_eq!(
            failed.as_deref(),
            Some("a row of `COPY t (a, b) FROM STDIN (FORMAT binary)` has 1 of 2 values")
        );
    }
}
