//! The shell scripts that run inside sprites for caches, each as `sh -c SCRIPT NAME ARGS...`
//! (`$0` names the step in the sprite's session list). They use only POSIX `sh`, `tar`,
//! `gzip`, `sha256sum`, `wc`, `mv` and `flock` (when present), which the base image has, and
//! `zstd` when the sprite has it (several times faster than gzip both ways; gzip otherwise).
//! Where `tar` is GNU tar (the base image's), saves after a restore or an earlier save are
//! layers: its listed-incremental format holds only what changed, directory listings included.
//!
//! Exit codes the plugin reads: 0 done, 3 nothing there (a miss, or no path to save), 4 the
//! bytes do not verify, 5 a path changed while it was packed (a build ran), 6 tar could not
//! unpack, anything else a failure of the step.

/// Exit code: nothing there.
pub const NOTHING: i32 = 3;
/// Exit code: the bytes do not verify (size or SHA-256, or gzip's own check).
pub const DAMAGED: i32 = 4;
/// Exit code: a path changed while it was read (`tar`: "file changed as we read it").
pub const CHANGED: i32 = 5;
/// Exit code: tar could not unpack an archive that decompressed (a local problem, such as a
/// full disk; the entry itself is not blamed).
pub const UNPACK_FAILED: i32 = 6;
/// Exit code: the archive's decompressor (zstd) is not installed in the sprite.
pub const NO_DECOMPRESSOR: i32 = 8;

/// The line [`PACK`] writes first on stderr, naming the compression it chose.
pub const COMPRESSION_LINE: &str = "clauderon-compression: ";

/// The line [`PACK`] writes on stderr naming the archive it made: `layer` (only what changed
/// since the snapshot, GNU tar's listed-incremental format), `full` (everything, with a new
/// snapshot) or `plain` (everything, no snapshot: the sprite's tar is not GNU tar).
pub const ARCHIVE_LINE: &str = "clauderon-archive: ";

/// Session sprite, stdout = the archive: packs the absolute paths `$3...` (missing ones are
/// skipped) as a tar relative to `/`, compressed with zstd (fast level, all cores) when the
/// sprite has it, else gzip; stderr's first lines name which, and the archive made (see
/// [`ARCHIVE_LINE`]). `$1` is the paths' snapshot file and `$2` `layer` or `full`: a layer
/// holds only what changed since the snapshot (files, plus each directory's listing, which
/// carries deletions), packed against a copy of it at `$1.work`; a full archive starts
/// `$1.work` afresh. The caller promotes `$1.work` once the entry is stored ([`PROMOTE`]). A tar
/// that sees a file change fails the step, so a half-written `target/` is never saved.
pub const PACK: &str = r#"set -u
snap=$1 mode=$2
shift 2
cd /
for p in "$@"; do
  shift
  case $p in /*) ;; *) echo "not an absolute path: $p" >&2; exit 2;; esac
  if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "${p#/}"; fi
done
if [ "$#" -eq 0 ]; then echo "none of the cache paths exists" >&2; exit 3; fi
if command -v zstd >/dev/null 2>&1; then comp=zstd; else comp=gzip; fi
echo "clauderon-compression: $comp" >&2
kind=plain
if tar --version 2>/dev/null | head -n 1 | grep -q 'GNU tar'; then
  mkdir -p "$(dirname "$snap")"
  rm -f "$snap.work" "$snap.work.paths"
  kind=full
  # A layer says nothing of a path it does not hold: one that is gone since the snapshot
  # would come back from the base, so then the archive is whole.
  if [ "$mode" = layer ] && [ -f "$snap" ] && [ -f "$snap.paths" ]; then
    kind=layer
    while IFS= read -r p; do
      if [ ! -e "/$p" ] && [ ! -L "/$p" ]; then kind=full; fi
    done < "$snap.paths"
    if [ "$kind" = layer ] && ! cp "$snap" "$snap.work"; then kind=full; fi
  fi
  printf '%s\n' "$@" > "$snap.work.paths"
fi
echo "clauderon-archive: $kind" >&2
pack() {
  if [ "$kind" = plain ]; then tar -cf - -- "$@"; else tar --listed-incremental="$snap.work" -cf - -- "$@"; fi
}
st=$(mktemp)
if [ "$comp" = zstd ]; then
  { pack "$@" || echo "$?" > "$st"; } | zstd -1 -T0 -q -c
else
  { pack "$@" || echo "$?" > "$st"; } | gzip -1
fi
gz=$?
rc=$(cat "$st"); rm -f "$st"
if [ -n "$rc" ]; then
  if [ "$rc" = 1 ]; then echo "a cache path changed while it was packed (a build is running?)" >&2; exit 5; fi
  echo "tar failed with exit $rc" >&2; exit 1
fi
if [ "$gz" != 0 ]; then echo "$comp failed with exit $gz" >&2; exit 1; fi
"#;

/// Cache sprite, stdin = the archive: writes it to `$1/incoming/$2.$3/archive.tgz`.
pub const RECEIVE: &str = r#"set -eu
dir="$1/incoming/$2.$3"
mkdir -p "$dir"
cat > "$dir/archive.tgz"
"#;

/// Cache sprite, stdin = `meta.json`: checks the received archive (`$4` bytes, SHA-256 `$5`),
/// writes the meta and moves the entry into place under the store's lock; a save of the same
/// key before it is replaced whole (readers see the old entry or the new one, never a mix).
/// Incoming saves abandoned for a day are removed.
pub const COMMIT: &str = r#"set -eu
root=$1 key=$2 nonce=$3 size=$4 sum=$5
dir="$root/incoming/$key.$nonce"
got=$(wc -c < "$dir/archive.tgz" | tr -d ' ')
if [ "$got" != "$size" ]; then echo "stored $got bytes of $size" >&2; rm -rf "$dir"; exit 4; fi
got=$(sha256sum "$dir/archive.tgz" | cut -d ' ' -f 1)
if [ "$got" != "$sum" ]; then echo "stored SHA-256 $got, sent $sum" >&2; rm -rf "$dir"; exit 4; fi
cat > "$dir/meta.json"
mkdir -p "$root/entries" "$root/trash"
place() {
  if [ -e "$root/entries/$key" ]; then mv "$root/entries/$key" "$root/trash/$key.$nonce"; fi
  mv "$dir" "$root/entries/$key"
}
if command -v flock >/dev/null 2>&1; then
  exec 9>"$root/.lock"
  flock 9
  place
  flock -u 9
else
  place
fi
rm -rf "$root/trash/$key.$nonce"
find "$root/incoming" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
"#;

/// Cache sprite: prints entry `$2`'s `meta.json`; exit 3 when there is no such entry.
pub const META: &str = r#"f="$1/entries/$2/meta.json"
if [ ! -f "$f" ]; then exit 3; fi
cat "$f"
"#;

/// Cache sprite, stdout = entry `$2`'s archive.
pub const SEND: &str = r#"f="$1/entries/$2/archive.tgz"
if [ ! -f "$f" ]; then echo "no archive for $2" >&2; exit 3; fi
exec cat "$f"
"#;

/// Session sprite, stdin = an archive compressed with `$2` (`zstd` or `gzip`): unpacks it into
/// the staging directory `$1`, made afresh when `$3` is `base`; when it is `layer` the archive
/// is a layer ([`PACK`]) applied over what the stage holds (changed files replaced, deleted
/// ones removed). The decompressor's own check (CRC, checksum, length) failing is exit 4, so a
/// damaged archive is never taken for a good one even when tar read all it needed.
pub const UNPACK: &str = r#"set -u
stage=$1 comp=$2 mode=$3
if ! command -v "$comp" >/dev/null 2>&1; then echo "$comp is not installed in the sprite" >&2; exit 8; fi
if [ "$mode" != layer ]; then rm -rf "$stage"; fi
mkdir -p "$stage"
st="$stage.gzip-status"
rm -f "$st"
untar() {
  if [ "$mode" = layer ]; then tar --listed-incremental=/dev/null -xf - -C "$stage"; else tar -xf - -C "$stage"; fi
}
{ "$comp" -dc || echo "$?" > "$st"; } | untar
tr=$?
if [ -s "$st" ]; then rm -f "$st"; rm -rf "$stage"; echo "the archive does not decompress (corrupt or truncated)" >&2; exit 4; fi
rm -f "$st"
if [ "$tr" != 0 ]; then rm -rf "$stage"; echo "tar could not unpack the archive (exit $tr)" >&2; exit 6; fi
"#;

/// Session sprite: moves each absolute path `$2...` that the staging directory `$1` holds into
/// place (replacing what is there), then removes the staging directory.
pub const PLACE: &str = r#"set -eu
stage=$1
shift
n=0
for p in "$@"; do
  src="$stage$p"
  if [ -e "$src" ] || [ -L "$src" ]; then
    rm -rf "$p"
    mkdir -p "$(dirname "$p")"
    mv "$src" "$p"
    n=$((n + 1))
  fi
done
rm -rf "$stage"
echo "$n"
"#;

/// Session sprite: records the state of the absolute paths `$3...` just restored from entry
/// `$2` in the snapshot file `$1` (GNU tar's listed-incremental snapshot; nothing is read but
/// the directories), with the key beside it in `$1.key`, so a later save of these paths can
/// be a layer over that entry. Exit 3: not GNU tar, or no path there.
pub const SNAPSHOT: &str = r#"set -u
snap=$1 key=$2
shift 2
tar --version 2>/dev/null | head -n 1 | grep -q 'GNU tar' || { echo "the sprite's tar is not GNU tar" >&2; exit 3; }
cd /
for p in "$@"; do
  shift
  if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "${p#/}"; fi
done
if [ "$#" -eq 0 ]; then exit 3; fi
mkdir -p "$(dirname "$snap")"
rm -f "$snap" "$snap.key" "$snap.paths" "$snap.tmp"
tar --listed-incremental="$snap.tmp" -cf /dev/null -- "$@" || { rm -f "$snap.tmp"; exit 1; }
mv "$snap.tmp" "$snap"
printf '%s\n' "$@" > "$snap.paths"
printf '%s\n' "$key" > "$snap.key"
"#;

/// Session sprite: the key of the entry the snapshot `$1` describes (exit 3: none).
pub const SNAPSHOT_KEY: &str =
    r#"if [ -f "$1" ] && [ -f "$1.key" ] && [ -f "$1.paths" ]; then cat "$1.key"; else exit 3; fi"#;

/// Session sprite: makes the snapshot [`PACK`] left at `$1.work` the paths' snapshot, for the
/// entry `$2` just stored.
pub const PROMOTE: &str = r#"set -eu
mv "$1.work" "$1"
mv "$1.work.paths" "$1.paths"
printf '%s\n' "$2" > "$1.key"
"#;

/// Session sprite: removes a staging directory left by a failed restore.
pub const CLEAN: &str = r#"rm -rf "$1" "$1.gzip-status""#;

/// Cache sprite: removes entries `$2...` under the store's lock; prints each one removed.
pub const DELETE: &str = r#"set -eu
root=$1
shift
mkdir -p "$root/entries" "$root/trash"
if command -v flock >/dev/null 2>&1; then exec 9>"$root/.lock"; flock 9; fi
for k in "$@"; do
  if [ -e "$root/entries/$k" ]; then
    mv "$root/entries/$k" "$root/trash/$k.deleted.$$"
    echo "$k"
  fi
done
rm -rf "$root/trash"/*.deleted.$$
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// Runs `script` with `sh` and `args`, `stdin` on its input: (exit code, stdout, stderr).
    fn sh(script: &str, args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
        use std::io::Write as _;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("clauderon-test")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts");
        if let Some(mut i) = child.stdin.take() {
            i.write_all(stdin).expect("stdin is written");
        }
        let out = child.wait_with_output().expect("sh ends");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), out.stdout, err)
    }

    fn said<'a>(stderr: &'a str, line: &str) -> &'a str {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("no {line:?} in {stderr}"))
    }

    fn s(p: &Path) -> &str {
        p.to_str().expect("a UTF-8 temp path")
    }

    #[test]
    fn a_layer_holds_changes_and_deletions_and_a_path_gone_since_makes_the_next_whole() {
        if !Command::new("tar")
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"))
        {
            eprintln!("skipped: this machine's tar is not GNU tar");
            return;
        }
        let root = std::env::temp_dir().join(format!("clauderon-layer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (a, b) = (root.join("src/a"), root.join("src/b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("keep"), "keep").unwrap();
        std::fs::write(a.join("old"), "old").unwrap();
        // Bytes that do not compress (xorshift), so the whole archive is large.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(b.join("x"), &noise).unwrap();
        let snap = root.join("snapshots/p.snar");
        let pack = |mode: &str| {
            let (code, archive, err) = sh(PACK, &[s(&snap), mode, s(&a), s(&b)], b"");
            assert_eq!(code, 0, "{err}");
            let kind = said(&err, ARCHIVE_LINE).to_owned();
            let comp = said(&err, COMPRESSION_LINE).to_owned();
            (kind, comp, archive)
        };
        // No snapshot yet: whole, and its snapshot is kept once the entry is stored.
        let (kind, comp, whole) = pack("layer");
        assert_eq!(kind, "full");
        assert_eq!(sh(PROMOTE, &[s(&snap), "k0"], b"").0, 0);
        let (_, key, _) = sh(SNAPSHOT_KEY, &[s(&snap)], b"");
        assert_eq!(String::from_utf8_lossy(&key).trim(), "k0");

        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(a.join("new"), "new").unwrap();
        std::fs::remove_file(a.join("old")).unwrap();
        let (kind, _, layer) = pack("layer");
        assert_eq!(kind, "layer");
        assert!(
            layer.len() * 4 < whole.len(),
            "{} vs {}",
            layer.len(),
            whole.len()
        );
        assert_eq!(sh(PROMOTE, &[s(&snap), "k1"], b"").0, 0);

        // The whole archive, then the layer over it: the state the layer was made from.
        let stage = root.join("stage");
        assert_eq!(sh(UNPACK, &[s(&stage), &comp, "base"], &whole).0, 0);
        let (code, _, err) = sh(UNPACK, &[s(&stage), &comp, "layer"], &layer);
        assert_eq!(code, 0, "{err}");
        let got = stage.join(a.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read_to_string(got.join("keep")).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(got.join("new")).unwrap(), "new");
        assert!(!got.join("old").exists());
        let bx = stage.join(b.strip_prefix("/").unwrap()).join("x");
        assert_eq!(std::fs::read(bx).unwrap(), noise);

        // A path gone since the snapshot would come back from the base: the next is whole.
        std::fs::remove_dir_all(&b).unwrap();
        let (kind, _, _) = pack("layer");
        assert_eq!(kind, "full");
        let _ = std::fs::remove_dir_all(&root);
    }
}
