//! Filesystem endpoints. Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against the
//! sprite's root (its mount namespace's root when sandboxed, else its disk), so `..` and symlinks
//! cannot leave the sprite; later steps work on directory descriptors (`*at` calls).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde_json::{Value, json};

use crate::api::{query_get, query_pairs, truthy};
use crate::app::{App, Sprite};
use crate::cli::Quirk;
use crate::error::{ApiError, json_response};

/// Largest accepted fs/write body (the spec's 16 MiB).
pub const WRITE_LIMIT: usize = 16 * 1024 * 1024;
/// Largest fs/write body under the `fs-write-limits` quirk (the ~1 MB observed in Jan 2026).
pub const OBSERVED_WRITE_LIMIT: usize = 1_000_000;

struct FsErr {
    errno: Errno,
    path: String,
}

impl FsErr {
    fn into_api(self) -> ApiError {
        let (status, code) = match self.errno {
            Errno::ENOENT => (StatusCode::NOT_FOUND, "ENOENT"),
            Errno::EEXIST => (StatusCode::CONFLICT, "EEXIST"),
            Errno::ENOTDIR => (StatusCode::BAD_REQUEST, "ENOTDIR"),
            Errno::EISDIR => (StatusCode::BAD_REQUEST, "EISDIR"),
            Errno::EACCES | Errno::EPERM | Errno::EROFS => (StatusCode::FORBIDDEN, "EACCES"),
            Errno::ENOTEMPTY => (StatusCode::BAD_REQUEST, "ENOTEMPTY"),
            Errno::EINVAL | Errno::ELOOP | Errno::EXDEV | Errno::ENAMETOOLONG => {
                (StatusCode::BAD_REQUEST, "EINVAL")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "EIO"),
        };
        ApiError::fs(
            status,
            code,
            &self.path,
            format!("{}: {}", self.path, self.errno.desc()),
        )
    }
}

fn err(path: &str) -> impl Fn(Errno) -> FsErr + '_ {
    move |errno| FsErr {
        errno,
        path: path.to_owned(),
    }
}

/// Lexically normalises `path` (relative ones against `working_dir`, default `/`).
pub fn absolute(path: &str, working_dir: Option<&str>) -> String {
    let base = if path.starts_with('/') {
        String::new()
    } else {
        working_dir.unwrap_or("/").to_owned()
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in base.split('/').chain(path.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn rel(abs: &str) -> &str {
    let r = abs.trim_start_matches('/');
    if r.is_empty() { "." } else { r }
}

fn split(abs: &str) -> Option<(String, String)> {
    let (parent, name) = abs.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    let parent = if parent.is_empty() { "/" } else { parent };
    Some((parent.to_owned(), name.to_owned()))
}

fn open_in(root: &OwnedFd, abs: &str, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, rel(abs), how)
}

fn open_dir(root: &OwnedFd, abs: &str) -> nix::Result<OwnedFd> {
    open_in(root, abs, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
}

async fn root_of(app: &App, sprite: &Arc<Sprite>) -> Result<OwnedFd, ApiError> {
    let path = if app.sandboxed {
        let pid = app
            .init_pid(sprite)
            .await
            .ok_or_else(|| ApiError::internal("sprite sandbox is not running"))?;
        std::path::PathBuf::from(format!("/proc/{pid}/root"))
    } else {
        sprite.paths.root()
    };
    let f = std::fs::File::open(&path)
        .map_err(|e| ApiError::internal(format!("cannot open the sprite's root: {e}")))?;
    Ok(f.into())
}

fn mode_string(st: &FileStat) -> String {
    format!("{:04o}", st.st_mode & 0o7777)
}

fn type_of(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFLNK => "symlink",
        _ => "file",
    }
}

fn entry(name: &str, path: &str, st: &FileStat) -> Value {
    let t = time::OffsetDateTime::from_unix_timestamp(st.st_mtime)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    json!({
        "name": name,
        "path": path,
        "type": type_of(st),
        "size": st.st_size,
        "mode": mode_string(st),
        "modTime": crate::time_fmt::seconds(t),
        "isDir": type_of(st) == "directory",
    })
}

fn params(uri: &Uri) -> (Option<String>, Option<String>, Vec<(String, String)>) {
    let q = query_pairs(uri);
    (
        query_get(&q, "path").map(str::to_owned),
        query_get(&q, "workingDir").map(str::to_owned),
        q,
    )
}

fn need_path(p: Option<String>) -> Result<String, ApiError> {
    p.filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("path is required"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FsErr> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(FsErr::into_api)
}

/// `GET .../fs/read?path=&workingDir=`: raw bytes.
pub async fn read(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let (path, wd, _) = params(&uri);
    let abs = absolute(&need_path(path)?, wd.as_deref());
    let root = root_of(&app, &sprite).await?;
    let data = blocking(move || {
        let e = err(&abs);
        let fd = open_in(&root, &abs, OFlag::O_RDONLY, Mode::empty()).map_err(&e)?;
        let mut f = std::fs::File::from(fd);
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|io| e(Errno::from_raw(io.raw_os_error().unwrap_or(libc::EIO))))?;
        Ok(buf)
    })
    .await?;
    let mut resp = (StatusCode::OK, data).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim().trim_start_matches("0o");
    u32::from_str_radix(t, 8).ok().filter(|m| *m <= 0o7777)
}

fn mkdir_parents(root: &OwnedFd, dir_abs: &str) -> Result<(), FsErr> {
    let mut cur = String::new();
    for comp in dir_abs.split('/').filter(|c| !c.is_empty()) {
        let parent = if cur.is_empty() {
            "/".to_owned()
        } else {
            cur.clone()
        };
        let pfd = open_dir(root, &parent).map_err(err(&parent))?;
        match mkdirat(&pfd, comp, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err(&parent)(e)),
        }
        cur = format!("{cur}/{comp}");
    }
    Ok(())
}

/// `PUT .../fs/write?path=&workingDir=&mode=0644&mkdir=true|mkdirParents=true`: body = content.
pub async fn write(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let observed = app.cfg.quirk(Quirk::FsWriteLimits);
    let limit = if observed {
        OBSERVED_WRITE_LIMIT
    } else {
        WRITE_LIMIT
    };
    if body.len() > limit {
        return Err(ApiError::msg(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("file content exceeds the {limit} byte limit"),
        ));
    }
    if observed && std::str::from_utf8(&body).is_err() {
        return Err(ApiError::bad_request("Bad Request"));
    }
    let sprite = app.sprite_env(&name).await?;
    let (path, wd, q) = params(&uri);
    let abs = absolute(&need_path(path)?, wd.as_deref());
    let mode = match query_get(&q, "mode") {
        None | Some("") => 0o644,
        Some(m) => parse_mode(m).ok_or_else(|| {
            ApiError::bad_request(format!("mode {m:?} must be an octal string such as 0644"))
        })?,
    };
    let parents = truthy(query_get(&q, "mkdir")).unwrap_or(false)
        || truthy(query_get(&q, "mkdirParents")).unwrap_or(false);
    let (parent, _) = split(&abs).ok_or_else(|| {
        ApiError::fs(
            StatusCode::BAD_REQUEST,
            "EISDIR",
            &abs,
            "cannot write to a directory",
        )
    })?;
    let root = root_of(&app, &sprite).await?;
    let abs2 = abs.clone();
    let size = body.len();
    blocking(move || {
        if parents {
            mkdir_parents(&root, &parent)?;
        }
        let e = err(&abs2);
        let fd = open_in(
            &root,
            &abs2,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(mode),
        )
        .map_err(&e)?;
        fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(&e)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(&body)
            .map_err(|io| e(Errno::from_raw(io.raw_os_error().unwrap_or(libc::EIO))))?;
        Ok(())
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"path": abs, "size": size, "mode": format!("{mode:04o}")}),
    ))
}

/// `GET .../fs/list?path=&workingDir=`: a directory's entries, or the one entry of a file.
pub async fn list(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let (path, wd, _) = params(&uri);
    let abs = absolute(&path.unwrap_or_else(|| ".".to_owned()), wd.as_deref());
    let root = root_of(&app, &sprite).await?;
    let abs2 = abs.clone();
    let entries = blocking(move || {
        let e = err(&abs2);
        let fd = open_in(&root, &abs2, OFlag::O_PATH, Mode::empty()).map_err(&e)?;
        let st = fstat(&fd).map_err(&e)?;
        if type_of(&st) != "directory" {
            let name = abs2.rsplit('/').next().unwrap_or("").to_owned();
            return Ok(vec![entry(&name, &abs2, &st)]);
        }
        let dfd = open_in(
            &root,
            &abs2,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(&e)?;
        let statfd = dfd.try_clone().map_err(|_| e(Errno::EIO))?;
        let mut dir = nix::dir::Dir::from_fd(dfd).map_err(&e)?;
        let mut out = Vec::new();
        for ent in dir.iter().flatten() {
            let n = ent.file_name().to_string_lossy().into_owned();
            if n == "." || n == ".." {
                continue;
            }
            let Ok(st) = fstatat(&statfd, n.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            let p = if abs2 == "/" {
                format!("/{n}")
            } else {
                format!("{abs2}/{n}")
            };
            out.push(entry(&n, &p, &st));
        }
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(out)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"path": abs, "count": entries.len(), "entries": entries}),
    ))
}

fn remove_tree(
    pfd: &OwnedFd,
    name: &str,
    abs: &str,
    deleted: &mut Vec<String>,
) -> Result<(), FsErr> {
    let e = err(abs);
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let dfd = openat2(pfd, name, how).map_err(&e)?;
    let statfd = dfd.try_clone().map_err(|_| e(Errno::EIO))?;
    let mut dir = nix::dir::Dir::from_fd(dfd).map_err(&e)?;
    let names: Vec<String> = dir
        .iter()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    for n in names {
        let child = format!("{abs}/{n}");
        let st = fstatat(&statfd, n.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(err(&child))?;
        if type_of(&st) == "directory" {
            remove_tree(&statfd, &n, &child, deleted)?;
        } else {
            unlinkat(&statfd, n.as_str(), UnlinkatFlags::NoRemoveDir).map_err(err(&child))?;
            deleted.push(child);
        }
    }
    unlinkat(pfd, name, UnlinkatFlags::RemoveDir).map_err(&e)?;
    deleted.push(abs.to_owned());
    Ok(())
}

/// `DELETE .../fs/delete`: parameters in the query (Go/JS) or a JSON body (spec).
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let (mut path, mut wd, q) = params(&uri);
    let mut recursive = truthy(query_get(&q, "recursive")).unwrap_or(false);
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        if let Some(p) = v.get("path").and_then(Value::as_str) {
            path = Some(p.to_owned());
        }
        if let Some(w) = v.get("workingDir").and_then(Value::as_str) {
            wd = Some(w.to_owned());
        }
        if let Some(r) = v.get("recursive").and_then(Value::as_bool) {
            recursive = r;
        }
    }
    let abs = absolute(&need_path(path)?, wd.as_deref());
    let (parent, leaf) = split(&abs).ok_or_else(|| {
        ApiError::fs(
            StatusCode::BAD_REQUEST,
            "EINVAL",
            &abs,
            "refusing to delete /",
        )
    })?;
    let root = root_of(&app, &sprite).await?;
    let abs2 = abs.clone();
    let deleted = blocking(move || {
        let e = err(&abs2);
        let pfd = open_dir(&root, &parent).map_err(&e)?;
        let st = fstatat(&pfd, leaf.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(&e)?;
        let mut deleted = Vec::new();
        if type_of(&st) == "directory" {
            if recursive {
                remove_tree(&pfd, &leaf, &abs2, &mut deleted)?;
            } else {
                unlinkat(&pfd, leaf.as_str(), UnlinkatFlags::RemoveDir).map_err(&e)?;
                deleted.push(abs2.clone());
            }
        } else {
            unlinkat(&pfd, leaf.as_str(), UnlinkatFlags::NoRemoveDir).map_err(&e)?;
            deleted.push(abs2.clone());
        }
        Ok(deleted)
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"count": deleted.len(), "deleted": deleted}),
    ))
}

/// `POST .../fs/rename` `{"source","dest","workingDir"}`.
pub async fn rename(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let sprite = app.sprite_env(&name).await?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let wd = v.get("workingDir").and_then(Value::as_str);
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("{k} is required")))
    };
    let src = absolute(field("source")?, wd);
    let dst = absolute(field("dest")?, wd);
    let bad = |p: &str| ApiError::fs(StatusCode::BAD_REQUEST, "EINVAL", p, "cannot rename /");
    let (sp, sn) = split(&src).ok_or_else(|| bad(&src))?;
    let (dp, dn) = split(&dst).ok_or_else(|| bad(&dst))?;
    let root = root_of(&app, &sprite).await?;
    let (s2, d2) = (src.clone(), dst.clone());
    blocking(move || {
        let spfd = open_dir(&root, &sp).map_err(err(&s2))?;
        let dpfd = open_dir(&root, &dp).map_err(err(&d2))?;
        renameat(&spfd, sn.as_str(), &dpfd, dn.as_str()).map_err(err(&s2))
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"source": src, "dest": dst}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_clamped_at_root() {
        assert_eq!(absolute("a/b", Some("/home/sprite")), "/home/sprite/a/b");
        assert_eq!(absolute("../../../../etc", Some("/home/sprite")), "/etc");
        assert_eq!(absolute("/x/./y/../z", None), "/x/z");
        assert_eq!(absolute(".", None), "/");
    }
}
