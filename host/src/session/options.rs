//! The options a session is created with, and a parser for every `create` flag value.
//!
//! Every parser returns an [`OptionError`] that names the flag, quotes the bad value and lists
//! what is accepted, so the CLI and the API reject bad input before anything is made.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A flag value that does not parse; the message names the flag and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value `{value}` for {flag}: {reason}")]
pub struct OptionError {
    /// The flag, e.g. `--memory-limit`.
    pub flag: &'static str,
    /// The rejected value (truncated to 64 characters).
    pub value: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl OptionError {
    fn new(flag: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            value: value.chars().take(64).collect(),
            reason: reason.into(),
        }
    }
}

/// How long a session may sit idle before it is hibernated (`--hibernation-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HibernationTimeout {
    /// 5 minutes.
    M5,
    /// 15 minutes.
    M15,
    /// 30 minutes.
    M30,
    /// 1 hour.
    H1,
    /// 2 hours.
    H2,
    /// 6 hours.
    H6,
    /// Never hibernate automatically.
    Never,
}

const TIMEOUTS: [(&str, HibernationTimeout); 7] = [
    ("5m", HibernationTimeout::M5),
    ("15m", HibernationTimeout::M15),
    ("30m", HibernationTimeout::M30),
    ("1h", HibernationTimeout::H1),
    ("2h", HibernationTimeout::H2),
    ("6h", HibernationTimeout::H6),
    ("never", HibernationTimeout::Never),
];

impl HibernationTimeout {
    /// The idle time, or `None` for `never`.
    pub fn duration(self) -> Option<Duration> {
        let mins = match self {
            Self::M5 => 5,
            Self::M15 => 15,
            Self::M30 => 30,
            Self::H1 => 60,
            Self::H2 => 120,
            Self::H6 => 360,
            Self::Never => return None,
        };
        Some(Duration::from_secs(mins * 60))
    }
    /// The flag spelling (`5m` ... `never`).
    pub fn as_str(self) -> &'static str {
        TIMEOUTS
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(s, _)| *s)
            .unwrap_or("never")
    }
}

impl FromStr for HibernationTimeout {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v = s.trim().to_ascii_lowercase();
        TIMEOUTS
            .iter()
            .find(|(k, _)| *k == v)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                OptionError::new(
                    "--hibernation-timeout",
                    s,
                    "expected one of 5m, 15m, 30m, 1h, 2h, 6h, never",
                )
            })
    }
}

impl fmt::Display for HibernationTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for HibernationTimeout {
    type Error = OptionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HibernationTimeout> for String {
    fn from(t: HibernationTimeout) -> Self {
        t.as_str().to_string()
    }
}

/// The most CPUs a session may ask for.
pub const MAX_CPUS: u32 = 256;

/// Parses `--cpu-limit N`: a whole number of CPUs from 1 to [`MAX_CPUS`].
pub fn parse_cpu_limit(s: &str) -> Result<u32, OptionError> {
    let err = |why: &str| OptionError::new("--cpu-limit", s, why);
    let n: u64 = s.trim().parse().map_err(|_| {
        err(&format!(
            "expected a whole number of CPUs from 1 to {MAX_CPUS}, e.g. 2"
        ))
    })?;
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_CPUS).contains(&n) => Ok(n),
        _ => Err(err(&format!("the CPU count must be from 1 to {MAX_CPUS}"))),
    }
}

/// A memory size (`--memory-limit`), in bytes; written with a binary unit: `512M`, `2G`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct MemoryLimit(u64);

/// The smallest accepted memory limit (64 MiB): below it no agent starts.
pub const MIN_MEMORY: u64 = 64 << 20;
/// The largest accepted memory limit (1 TiB).
pub const MAX_MEMORY: u64 = 1 << 40;

impl MemoryLimit {
    /// The limit in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
    /// The limit in MiB (rounded down).
    pub fn mebibytes(self) -> u64 {
        self.0 >> 20
    }
}

impl FromStr for MemoryLimit {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const HELP: &str = "expected a size with a unit K, M, G or T (binary), e.g. 512M or 2G";
        let err = |why: String| OptionError::new("--memory-limit", s, why);
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        if num.is_empty() {
            return Err(err(HELP.to_string()));
        }
        let n: u64 = num.parse().map_err(|_| err(HELP.to_string()))?;
        let shift = match unit.to_ascii_uppercase().as_str() {
            "" => return Err(err(format!("missing unit; {HELP}"))),
            "K" | "KB" | "KI" | "KIB" => 10,
            "M" | "MB" | "MI" | "MIB" => 20,
            "G" | "GB" | "GI" | "GIB" => 30,
            "T" | "TB" | "TI" | "TIB" => 40,
            _ => return Err(err(format!("unknown unit `{unit}`; {HELP}"))),
        };
        let bytes = n
            .checked_mul(1u64 << shift)
            .filter(|b| *b <= MAX_MEMORY)
            .ok_or_else(|| err("the size is larger than 1T".to_string()))?;
        if bytes < MIN_MEMORY {
            return Err(err("the size is below the minimum of 64M".to_string()));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if self.0.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl TryFrom<String> for MemoryLimit {
    type Error = OptionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MemoryLimit> for String {
    fn from(m: MemoryLimit) -> Self {
        m.to_string()
    }
}

/// One build cache to keep across sessions (`--build-cache`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum BuildCache {
    /// Cargo registry, git checkouts and `target/`.
    Cargo,
    /// The npm cache.
    Npm,
    /// The yarn cache.
    Yarn,
    /// The bun cache.
    Bun,
    /// The pip cache.
    Pip,
    /// Docker layers.
    Docker,
    /// Any directory, relative to the workspace or absolute inside the sandbox.
    Dir(String),
}

const CACHE_KINDS: [(&str, BuildCache); 6] = [
    ("cargo", BuildCache::Cargo),
    ("npm", BuildCache::Npm),
    ("yarn", BuildCache::Yarn),
    ("bun", BuildCache::Bun),
    ("pip", BuildCache::Pip),
    ("docker", BuildCache::Docker),
];

impl BuildCache {
    /// The flag spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Dir(d) => d,
            other => CACHE_KINDS
                .iter()
                .find(|(_, k)| k == other)
                .map(|(s, _)| *s)
                .unwrap_or("?"),
        }
    }
}

impl FromStr for BuildCache {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let err = |why: &str| OptionError::new("--build-cache", s, why);
        if let Some((_, k)) = CACHE_KINDS.iter().find(|(n, _)| *n == t) {
            return Ok(k.clone());
        }
        // A directory is recognisably a path, so a typo such as `carg` is not silently taken
        // for a directory named `carg`.
        let looks_like_path = t.contains('/') || t.starts_with('.') || t.starts_with('~');
        if t.is_empty() {
            return Err(err(
                "empty entry; expected cargo, npm, yarn, bun, pip, docker or a directory",
            ));
        }
        if !looks_like_path {
            return Err(err(
                "unknown cache; expected cargo, npm, yarn, bun, pip, docker, or a directory path \
                 containing `/` (e.g. ./node_modules or /root/.cache/foo)",
            ));
        }
        if t.split('/').any(|c| c == "..") {
            return Err(err("a cache directory may not contain `..`"));
        }
        if t.chars().any(|c| c.is_control()) {
            return Err(err("a cache directory may not contain control characters"));
        }
        Ok(Self::Dir(t.to_string()))
    }
}

impl fmt::Display for BuildCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for BuildCache {
    type Error = OptionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BuildCache> for String {
    fn from(b: BuildCache) -> Self {
        b.as_str().to_string()
    }
}

/// Parses `--build-cache cargo,npm,./dir`: a comma-separated list, duplicates removed.
pub fn parse_build_caches(s: &str) -> Result<Vec<BuildCache>, OptionError> {
    let mut out: Vec<BuildCache> = Vec::new();
    for part in s.split(',') {
        let c: BuildCache = part.parse()?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Whether a build cache is shared by every session of a project or private to one session.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// Shared by every session of the same repository (the default).
    #[default]
    Project,
    /// Private to one session.
    Session,
}

impl FromStr for CacheScope {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "project" => Ok(Self::Project),
            "session" => Ok(Self::Session),
            _ => Err(OptionError::new(
                "--cache-scope",
                s,
                "expected `project` or `session`",
            )),
        }
    }
}

impl fmt::Display for CacheScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Project => "project",
            Self::Session => "session",
        })
    }
}

/// Parses `--model NAME`: a non-empty model name without whitespace or control characters.
pub fn parse_model(s: &str) -> Result<String, OptionError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(OptionError::new(
            "--model",
            s,
            "empty model name; give e.g. `sonnet` or `opus`",
        ));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) || t.starts_with('-') || t.len() > 128
    {
        return Err(OptionError::new(
            "--model",
            s,
            "a model name is one word of at most 128 characters, not starting with `-`",
        ));
    }
    Ok(t.to_string())
}

/// Everything `create` accepts besides backend, repository, prompt and name. Stored with the
/// session as JSON; every field is optional in JSON so older rows keep loading.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionOptions {
    /// Idle time before hibernation; `None` means the backend's configured default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hibernation_timeout: Option<HibernationTimeout>,
    /// CPUs for the sandbox.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_cpu_limit"
    )]
    pub cpu_limit: Option<u32>,
    /// Memory for the sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<MemoryLimit>,
    /// Build caches to persist.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build_cache: Vec<BuildCache>,
    /// Whether caches are shared per project or per session.
    pub cache_scope: CacheScope,
    /// The agent's model.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "de_model")]
    pub model: Option<String>,
    /// Start the agent in plan mode.
    pub plan_mode: bool,
    /// Run the agent non-interactively and stream its output (`--print`).
    pub print: bool,
}

/// JSON (API bodies, stored rows) gets the same checks as the flags. A number or the flag's
/// text (`"2"`, what a form field holds) is accepted, so `"two"`, `-1` or `1.5` get the
/// flag's message too.
fn de_cpu_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(serde_json::Number),
        Text(String),
    }
    let v: Option<Raw> = serde::Deserialize::deserialize(d)?;
    v.map(|raw| match raw {
        Raw::Number(n) => parse_cpu_limit(&n.to_string()),
        Raw::Text(t) => parse_cpu_limit(&t),
    })
    .transpose()
    .map_err(serde::de::Error::custom)
}

fn de_model<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = serde::Deserialize::deserialize(d)?;
    v.map(|m| parse_model(&m))
        .transpose()
        .map_err(serde::de::Error::custom)
}

impl SessionOptions {
    /// Builds options from raw flag values as the CLI or API received them, validating each;
    /// the first bad value is returned as an error and nothing else is looked at.
    #[allow(clippy::too_many_arguments)]
    pub fn from_flags(
        hibernation_timeout: Option<&str>,
        cpu_limit: Option<&str>,
        memory_limit: Option<&str>,
        build_cache: Option<&str>,
        cache_scope: Option<&str>,
        model: Option<&str>,
        plan_mode: bool,
        print: bool,
    ) -> Result<Self, OptionError> {
        Ok(Self {
            hibernation_timeout: hibernation_timeout.map(str::parse).transpose()?,
            cpu_limit: cpu_limit.map(parse_cpu_limit).transpose()?,
            memory_limit: memory_limit.map(str::parse).transpose()?,
            build_cache: build_cache
                .map(parse_build_caches)
                .transpose()?
                .unwrap_or_default(),
            cache_scope: cache_scope.map(str::parse).transpose()?.unwrap_or_default(),
            model: model.map(parse_model).transpose()?,
            plan_mode,
            print,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hibernation_timeouts() {
        for (s, mins) in [
            ("5m", Some(5)),
            ("15m", Some(15)),
            ("30m", Some(30)),
            ("1h", Some(60)),
            ("2h", Some(120)),
            ("6h", Some(360)),
            ("never", None),
            ("NEVER", None),
        ] {
            let t: HibernationTimeout = s.parse().unwrap();
            assert_eq!(t.duration(), mins.map(|m| Duration::from_secs(m * 60)));
            assert_eq!(t.to_string(), s.to_ascii_lowercase());
        }
        for bad in ["", "10m", "1d", "5", "-5m", "forever", "5 m"] {
            let e = bad.parse::<HibernationTimeout>().unwrap_err();
            assert_eq!(e.flag, "--hibernation-timeout");
            assert!(
                e.to_string().contains("5m, 15m, 30m, 1h, 2h, 6h, never"),
                "{e}"
            );
        }
    }

    #[test]
    fn cpu_limits() {
        assert_eq!(parse_cpu_limit("1").unwrap(), 1);
        assert_eq!(parse_cpu_limit(" 8 ").unwrap(), 8);
        assert_eq!(parse_cpu_limit("256").unwrap(), 256);
        for bad in ["0", "-1", "1.5", "two", "", "257", "99999999999999999999"] {
            let e = parse_cpu_limit(bad).unwrap_err();
            assert_eq!(e.flag, "--cpu-limit", "{bad}");
            assert!(e.to_string().contains("from 1 to 256"), "{e}");
        }
    }

    #[test]
    fn memory_limits() {
        for (s, bytes) in [
            ("512M", 512u64 << 20),
            ("2G", 2 << 30),
            ("2g", 2 << 30),
            ("4GiB", 4 << 30),
            ("1T", 1 << 40),
            ("65536K", 64 << 20),
        ] {
            assert_eq!(s.parse::<MemoryLimit>().unwrap().bytes(), bytes, "{s}");
        }
        assert_eq!("2048M".parse::<MemoryLimit>().unwrap().to_string(), "2G");
        for (bad, why) in [
            ("512", "missing unit"),
            ("", "expected a size"),
            ("M", "expected a size"),
            ("2X", "unknown unit `X`"),
            ("1.5G", "unknown unit `.5G`"),
            ("-2G", "expected a size"),
            ("1M", "below the minimum"),
            ("0G", "below the minimum"),
            ("2T", "larger than 1T"),
            ("99999999999999999999G", "expected a size"),
        ] {
            let e = bad.parse::<MemoryLimit>().unwrap_err();
            assert_eq!(e.flag, "--memory-limit");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn build_caches() {
        assert_eq!(
            parse_build_caches("cargo,npm,yarn,bun,pip,docker,./node_modules,/root/.cache/x,cargo")
                .unwrap(),
            vec![
                BuildCache::Cargo,
                BuildCache::Npm,
                BuildCache::Yarn,
                BuildCache::Bun,
                BuildCache::Pip,
                BuildCache::Docker,
                BuildCache::Dir("./node_modules".into()),
                BuildCache::Dir("/root/.cache/x".into()),
            ]
        );
        for (bad, why) in [
            ("carg", "unknown cache"),
            ("cargo,,npm", "empty entry"),
            ("", "empty entry"),
            ("./a/../b", "`..`"),
            ("./a\u{7}", "control"),
        ] {
            let e = parse_build_caches(bad).unwrap_err();
            assert_eq!(e.flag, "--build-cache");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn cache_scopes_and_models() {
        assert_eq!(
            "project".parse::<CacheScope>().unwrap(),
            CacheScope::Project
        );
        assert_eq!(
            "session".parse::<CacheScope>().unwrap(),
            CacheScope::Session
        );
        let e = "global".parse::<CacheScope>().unwrap_err();
        assert!(e.to_string().contains("`project` or `session`"), "{e}");
        assert_eq!(parse_model("opus").unwrap(), "opus");
        for bad in ["", "  ", "two words", "--plan", &"m".repeat(129)] {
            assert_eq!(parse_model(bad).unwrap_err().flag, "--model");
        }
    }

    #[test]
    fn from_flags_and_json() {
        let o = SessionOptions::from_flags(
            Some("30m"),
            Some("2"),
            Some("2G"),
            Some("cargo,./t"),
            Some("session"),
            Some("opus"),
            true,
            false,
        )
        .unwrap();
        let j = serde_json::to_value(&o).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"hibernation_timeout":"30m","cpu_limit":2,"memory_limit":"2G",
                "build_cache":["cargo","./t"],"cache_scope":"session","model":"opus",
                "plan_mode":true,"print":false})
        );
        let back: SessionOptions = serde_json::from_value(j).unwrap();
        assert_eq!(back, o);
        let e = SessionOptions::from_flags(None, Some("0"), None, None, None, None, false, false)
            .unwrap_err();
        assert_eq!(e.flag, "--cpu-limit");
        // A stored row with a bad value is an error, not a silently different option.
        for bad in [
            r#"{"memory_limit":"5"}"#,
            r#"{"cpu_limit":0}"#,
            r#"{"cpu_limit":1000}"#,
            r#"{"cpu_limit":-1}"#,
            r#"{"model":"two words"}"#,
            r#"{"hibernation_timeout":"10m"}"#,
            r#"{"build_cache":["carg"]}"#,
            r#"{"cache_scope":"global"}"#,
            r#"{"cpu_limt":2}"#,
        ] {
            let e = serde_json::from_str::<SessionOptions>(bad).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        for bad in [
            r#"{"cpu_limit":0}"#,
            r#"{"cpu_limit":-1}"#,
            r#"{"cpu_limit":1.5}"#,
            r#"{"cpu_limit":"two"}"#,
        ] {
            let e = serde_json::from_str::<SessionOptions>(bad).unwrap_err();
            assert!(e.to_string().contains("for --cpu-limit"), "{bad}: {e}");
        }
        let o: SessionOptions = serde_json::from_str(r#"{"cpu_limit":"4"}"#).unwrap();
        assert_eq!(o.cpu_limit, Some(4));
        assert_eq!(
            serde_json::from_str::<SessionOptions>("{}").unwrap(),
            SessionOptions::default()
        );
    }
}
