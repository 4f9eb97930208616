//! Validated values: built by a `parse` that can fail, so the rest of the code never sees
//! an empty title or a folder path with `..` in it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A workspace name or a document title: 1..=200 characters once trimmed, no control
/// characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidValue> {
        parse_name(field, raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Title {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse("title", &value)
    }
}

impl From<Title> for String {
    fn from(value: Title) -> Self {
        value.0
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name: trimmed, 1..=`max` characters, no control characters.
fn parse_name(field: &'static str, raw: &str, max: usize) -> Result<String, InvalidValue> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InvalidValue::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidValue::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// The name of a document version: 1..=100 characters once trimmed, no control
/// characters; unique per document (compared as given).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VersionName(String);

impl VersionName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, InvalidValue> {
        parse_name(field, raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for VersionName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse("name", &value)
    }
}

impl From<VersionName> for String {
    fn from(value: VersionName) -> Self {
        value.0
    }
}

/// Where a document sits in its workspace's folder tree: `/` or `/a/b`, segments of
/// 1..=100 characters, at most 16 deep, no `.`/`..`, no empty segments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FolderPath(String);

impl FolderPath {
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        const FIELD: &str = "folder";
        if !raw.starts_with('/') {
            return Err(InvalidValue::new(FIELD, "must start with '/'"));
        }
        if raw == "/" {
            return Ok(Self::root());
        }
        let body = raw.strip_suffix('/').unwrap_or(raw);
        let segments: Vec<&str> = body[1..].split('/').collect();
        if segments.len() > 16 {
            return Err(InvalidValue::new(FIELD, "must be at most 16 levels deep"));
        }
        for segment in &segments {
            if segment.is_empty() || *segment == "." || *segment == ".." {
                return Err(InvalidValue::new(
                    FIELD,
                    "must not contain empty, '.' or '..' segments",
                ));
            }
            if segment.chars().count() > 100 {
                return Err(InvalidValue::new(
                    FIELD,
                    "segments must be at most 100 characters",
                ));
            }
            if segment.chars().any(char::is_control) {
                return Err(InvalidValue::new(
                    FIELD,
                    "must not contain control characters",
                ));
            }
        }
        Ok(Self(body.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FolderPath {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<FolderPath> for String {
    fn from(value: FolderPath) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("title", "  Plan ").unwrap().as_str(), "Plan");
        assert!(Title::parse("title", "   ").is_err());
        assert!(Title::parse("title", &"x".repeat(201)).is_err());
        assert!(Title::parse("title", &"é".repeat(200)).is_ok());
        assert!(Title::parse("title", "a\u{0}b").is_err());
    }

    #[test]
    fn folder_paths_are_normalised_and_safe() {
        assert_eq!(FolderPath::parse("/").unwrap().as_str(), "/");
        assert_eq!(FolderPath::parse("/a/b/").unwrap().as_str(), "/a/b");
        assert!(FolderPath::parse("a").is_err());
        assert!(FolderPath::parse("/a//b").is_err());
        assert!(FolderPath::parse("/a/../b").is_err());
    }
}
