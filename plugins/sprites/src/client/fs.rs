//! The sprite's filesystem: read, write (mode, parent directories), list, stat, delete, rename.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::{Error, Result};
use super::handle::SpriteHandle;
use super::lenient;
use super::retry::Idempotency;
use super::transport::decode_json;

/// The service's documented limit for one write.
pub const MAX_WRITE: usize = 16 * 1024 * 1024;

/// One directory entry (or the file itself when a file path is listed).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FsEntry {
    /// The base name.
    #[serde(default)]
    pub name: String,
    /// The absolute path.
    #[serde(default)]
    pub path: String,
    /// `file`, `directory` or `symlink`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Permission bits as octal text (e.g. `0644`).
    #[serde(default)]
    pub mode: Option<String>,
    /// Modification time.
    #[serde(
        default,
        rename = "modTime",
        deserialize_with = "lenient::opt_timestamp"
    )]
    pub mod_time: Option<OffsetDateTime>,
    /// True for a directory.
    #[serde(default, rename = "isDir")]
    pub is_dir: bool,
}

impl FsEntry {
    /// The permission bits parsed from the octal text.
    pub fn mode_bits(&self) -> Option<u32> {
        self.mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m.trim_start_matches("0o"), 8).ok())
    }
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    entries: Vec<FsEntry>,
}

/// How to write a file.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Permission bits (e.g. `0o644`).
    pub mode: Option<u32>,
    /// Create missing parent directories.
    pub mkdir_parents: bool,
}

/// What a write reported.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WriteResult {
    /// The written path.
    #[serde(default)]
    pub path: String,
    /// Bytes written.
    #[serde(default)]
    pub size: u64,
    /// The resulting mode as octal text.
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Serialize)]
struct RenameBody<'a> {
    source: &'a str,
    dest: &'a str,
    #[serde(rename = "workingDir")]
    working_dir: &'a str,
}

#[derive(Serialize)]
struct DeleteBody<'a> {
    path: &'a str,
    #[serde(rename = "workingDir")]
    working_dir: &'a str,
    recursive: bool,
}

impl SpriteHandle {
    fn fs_url(&self, verb: &str, path: &str) -> url::Url {
        let mut url = self.url(&["fs", verb]);
        url.query_pairs_mut()
            .append_pair("path", path)
            .append_pair("workingDir", &self.working_dir);
        url
    }

    /// Reads a whole file.
    pub async fn read_file(&self, path: &str) -> Result<Bytes> {
        check_path(path)?;
        let op = self.op("GET", &format!("fs/read {path}"));
        let url = self.fs_url("read", path);
        let resp = self
            .client
            .send(&op, Idempotency::Read, |http| http.get(url.clone()))
            .await?;
        resp.bytes().await.map_err(|e| {
            Error::Transport(format!(
                "{op}: reading the file failed: {}",
                e.without_url()
            ))
        })
    }

    /// Writes a whole file (replacing it), optionally with a mode and missing parents.
    pub async fn write_file(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        opts: &WriteOptions,
    ) -> Result<WriteResult> {
        check_path(path)?;
        let data: Bytes = data.into();
        if data.len() > MAX_WRITE {
            return Err(Error::InvalidInput(format!(
                "{path}: {} bytes exceed the 16 MiB limit of one write; split the file or stream it through exec",
                data.len()
            )));
        }
        let mut url = self.fs_url("write", path);
        {
            let mut q = url.query_pairs_mut();
            if let Some(mode) = opts.mode {
                q.append_pair("mode", &format!("{:04o}", mode & 0o7777));
            }
            if opts.mkdir_parents {
                // The spec names it `mkdir`, every SDK `mkdirParents`: send both.
                q.append_pair("mkdir", "true");
                q.append_pair("mkdirParents", "true");
            }
        }
        let op = self.op("PUT", &format!("fs/write {path}"));
        self.client
            .send_json(&op, Idempotency::Write, |http| {
                http.put(url.clone())
                    .header("content-type", "application/octet-stream")
                    .body(data.clone())
            })
            .await
    }

    /// Lists a directory (a file path lists that one file).
    pub async fn list_dir(&self, path: &str) -> Result<Vec<FsEntry>> {
        check_path(path)?;
        let op = self.op("GET", &format!("fs/list {path}"));
        let url = self.fs_url("list", path);
        let resp = self
            .client
            .send(&op, Idempotency::Read, |http| http.get(url.clone()))
            .await?;
        Ok(decode_json::<ListAnswer>(&op, resp).await?.entries)
    }

    /// Describes one path, or `None` when it does not exist. Lists the parent directory and
    /// picks the entry, so it works for directories as well as files.
    pub async fn stat(&self, path: &str) -> Result<Option<FsEntry>> {
        check_path(path)?;
        let absolute = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("{}/{path}", self.working_dir.trim_end_matches('/'))
        };
        let trimmed = absolute.trim_end_matches('/');
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((parent, name)) => (parent, name),
            None => ("/", trimmed),
        };
        if name.is_empty() {
            return Ok(Some(FsEntry {
                name: "/".into(),
                path: "/".into(),
                kind: "directory".into(),
                size: 0,
                mode: None,
                mod_time: None,
                is_dir: true,
            }));
        }
        match self.list_dir(parent).await {
            Ok(entries) => Ok(entries.into_iter().find(|e| e.name == name)),
            Err(e) if e.is_not_found() || fs_code(&e) == Some("ENOTDIR") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a path (`recursive` for a non-empty directory).
    pub async fn delete_path(&self, path: &str, recursive: bool) -> Result<()> {
        check_path(path)?;
        let mut url = self.fs_url("delete", path);
        if recursive {
            url.query_pairs_mut().append_pair("recursive", "true");
        }
        // The spec puts the arguments in a JSON body, the SDKs in the query: send both.
        let body = DeleteBody {
            path,
            working_dir: &self.working_dir,
            recursive,
        };
        let op = self.op("DELETE", &format!("fs/delete {path}"));
        self.client
            .send(&op, Idempotency::Write, |http| {
                http.delete(url.clone()).json(&body)
            })
            .await?;
        Ok(())
    }

    /// Renames (moves) a path.
    pub async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        check_path(source)?;
        check_path(dest)?;
        let body = RenameBody {
            source,
            dest,
            working_dir: &self.working_dir,
        };
        let op = self.op("POST", &format!("fs/rename {source} -> {dest}"));
        self.client
            .send(&op, Idempotency::Write, |http| {
                http.post(self.url(&["fs", "rename"])).json(&body)
            })
            .await?;
        Ok(())
    }
}

/// The errno-style code of a filesystem error (`ENOENT`, `EEXIST`, ...).
pub fn fs_code(e: &Error) -> Option<&str> {
    match e {
        Error::Api { code, .. } => code.as_deref(),
        _ => None,
    }
}

fn check_path(path: &str) -> Result<()> {
    if path.is_empty() || path.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "{path:?} is not a usable path"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_entries() {
        let a: ListAnswer = serde_json::from_str(r#"{"path":"/x","entries":[{"name":"f","path":"/x/f","type":"file","size":3,"mode":"0644","modTime":"2026-01-31T10:00:00Z","isDir":false}],"count":1}"#).unwrap();
        assert_eq!(a.entries[0].mode_bits(), Some(0o644));
        let b: ListAnswer = serde_json::from_str(r#"{"entries":null}"#).unwrap();
        assert!(b.entries.is_empty());
    }
}
