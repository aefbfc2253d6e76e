//! The shell scripts that run inside sprites for caches, each as `sh -c SCRIPT NAME ARGS...`
//! (`$0` names the step in the sprite's session list). They use only POSIX `sh`, `tar`,
//! `gzip`, `sha256sum`, `wc`, `mv` and `flock` (when present), which the base image has, and
//! `zstd` when the sprite has it (several times faster than gzip both ways; gzip otherwise).
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

/// Session sprite, stdout = the archive: packs the absolute paths given (missing ones are
/// skipped) as a tar relative to `/`, compressed with zstd (fast level, all cores) when the
/// sprite has it, else gzip; the first stderr line names which. A tar that sees a file change
/// fails the step, so a half-written `target/` is never saved.
pub const PACK: &str = r#"set -u
cd /
for p in "$@"; do
  shift
  case $p in /*) ;; *) echo "not an absolute path: $p" >&2; exit 2;; esac
  if [ -e "$p" ] || [ -L "$p" ]; then set -- "$@" "${p#/}"; fi
done
if [ "$#" -eq 0 ]; then echo "none of the cache paths exists" >&2; exit 3; fi
if command -v zstd >/dev/null 2>&1; then comp=zstd; else comp=gzip; fi
echo "clauderon-compression: $comp" >&2
st=$(mktemp)
if [ "$comp" = zstd ]; then
  { tar -cf - -- "$@" || echo "$?" > "$st"; } | zstd -1 -T0 -q -c
else
  { tar -cf - -- "$@" || echo "$?" > "$st"; } | gzip -1
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
/// the staging directory `$1` (made afresh). The decompressor's own check (CRC, checksum,
/// length) failing is exit 4, so a damaged archive is never taken for a good one even when tar
/// read all it needed.
pub const UNPACK: &str = r#"set -u
stage=$1 comp=$2
if ! command -v "$comp" >/dev/null 2>&1; then echo "$comp is not installed in the sprite" >&2; exit 8; fi
rm -rf "$stage"
mkdir -p "$stage"
st="$stage.gzip-status"
rm -f "$st"
{ "$comp" -dc || echo "$?" > "$st"; } | tar -xf - -C "$stage"
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
