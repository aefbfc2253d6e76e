//! The options a session is created with, and a parser for every `create` flag value.
//!
//! Every parser returns an [`OptionError`] that names the option, quotes the bad value and
//! lists what is accepted, so the CLI and the API reject bad input before anything is made. The
//! error names the field (`options.cpu_limit`); the CLI shows it as its flag (`--cpu-limit`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which option a value was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionField {
    /// `hibernation_timeout` / `--hibernation-timeout`.
    HibernationTimeout,
    /// `cpu_limit` / `--cpu-limit`.
    CpuLimit,
    /// `memory_limit` / `--memory-limit`.
    MemoryLimit,
    /// `build_cache` / `--build-cache`.
    BuildCache,
    /// `cache_scope` / `--cache-scope`.
    CacheScope,
    /// `model` / `--model`.
    Model,
}

impl OptionField {
    /// Every option that takes a value.
    pub const ALL: [OptionField; 6] = [
        Self::HibernationTimeout,
        Self::CpuLimit,
        Self::MemoryLimit,
        Self::BuildCache,
        Self::CacheScope,
        Self::Model,
    ];

    /// The field's key in `options` (`cpu_limit`).
    pub fn key(self) -> &'static str {
        self.path().trim_start_matches("options.")
    }

    /// The field's path in the create request (`options.cpu_limit`).
    pub fn path(self) -> &'static str {
        match self {
            Self::HibernationTimeout => "options.hibernation_timeout",
            Self::CpuLimit => "options.cpu_limit",
            Self::MemoryLimit => "options.memory_limit",
            Self::BuildCache => "options.build_cache",
            Self::CacheScope => "options.cache_scope",
            Self::Model => "options.model",
        }
    }

    /// The `create` flag that sets it (`--cpu-limit`).
    pub fn flag(self) -> &'static str {
        match self {
            Self::HibernationTimeout => "--hibernation-timeout",
            Self::CpuLimit => "--cpu-limit",
            Self::MemoryLimit => "--memory-limit",
            Self::BuildCache => "--build-cache",
            Self::CacheScope => "--cache-scope",
            Self::Model => "--model",
        }
    }
}

/// A value that does not parse; the message names the field (the API's wording) and what is
/// accepted; [`OptionError::for_flag`] says the same naming the CLI flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value `{value}` for {}: {reason}", field.path())]
pub struct OptionError {
    /// The option.
    pub field: OptionField,
    /// The rejected value (truncated to 64 characters).
    pub value: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl OptionError {
    fn new(field: OptionField, value: &str, reason: impl Into<String>) -> Self {
        Self {
            field,
            value: value.chars().take(64).collect(),
            reason: reason.into(),
        }
    }

    /// The message naming the CLI flag instead of the field.
    pub fn for_flag(&self) -> String {
        format!(
            "invalid value `{}` for {}: {}",
            self.value,
            self.field.flag(),
            self.reason
        )
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

/// Every timeout, in the order the choices are listed.
pub const TIMEOUTS: [HibernationTimeout; 7] = [
    HibernationTimeout::M5,
    HibernationTimeout::M15,
    HibernationTimeout::M30,
    HibernationTimeout::H1,
    HibernationTimeout::H2,
    HibernationTimeout::H6,
    HibernationTimeout::Never,
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
        match self {
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::M30 => "30m",
            Self::H1 => "1h",
            Self::H2 => "2h",
            Self::H6 => "6h",
            Self::Never => "never",
        }
    }
}

impl FromStr for HibernationTimeout {
    type Err = OptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v = s.trim().to_ascii_lowercase();
        TIMEOUTS
            .iter()
            .find(|t| t.as_str() == v)
            .copied()
            .ok_or_else(|| {
                OptionError::new(
                    OptionField::HibernationTimeout,
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

/// A number of CPUs (`--cpu-limit`): more than 0 and at most [`MAX_CPUS`], in hundredths
/// (`2`, `0.5`, `1.25`). The plugin API carries it as a float, since providers size CPUs in
/// fractions; JSON writes a whole count as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuLimit(u32);

impl CpuLimit {
    /// The count as the plugin API carries it.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl fmt::Display for CpuLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{}", self.0 / 100)
        } else {
            write!(f, "{}", self.as_f64())
        }
    }
}

impl serde::Serialize for CpuLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(100) {
            s.serialize_u32(self.0 / 100)
        } else {
            s.serialize_f64(self.as_f64())
        }
    }
}

impl<'de> serde::Deserialize<'de> for CpuLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A number, or the flag's text (what a form field holds).
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(serde_json::Number),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        parse_cpu_limit(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses `--cpu-limit N`: more than 0 and at most [`MAX_CPUS`] CPUs, in hundredths at most.
pub fn parse_cpu_limit(s: &str) -> Result<CpuLimit, OptionError> {
    let err = |why: &str| OptionError::new(OptionField::CpuLimit, s, why);
    let range = format!("the CPU count must be more than 0 and at most {MAX_CPUS}, e.g. 2 or 0.5");
    let t = s.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
        return Err(err(&format!(
            "expected a number of CPUs (more than 0, at most {MAX_CPUS}), e.g. 2 or 0.5"
        )));
    }
    if frac.len() > 2 {
        return Err(err("give the CPU count in hundredths at most, e.g. 0.25"));
    }
    let whole: u64 = whole.parse().map_err(|_| err(&range))?;
    let frac: u64 = format!("{frac:0<2}").parse().unwrap_or(0);
    let hundredths = whole.saturating_mul(100).saturating_add(frac);
    match u32::try_from(hundredths) {
        Ok(h) if h > 0 && h <= MAX_CPUS * 100 => Ok(CpuLimit(h)),
        _ => Err(err(&range)),
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
        let err = |why: String| OptionError::new(OptionField::MemoryLimit, s, why);
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

/// The named cache kinds (every [`BuildCache`] but a directory), with the names the flag takes.
pub const CACHE_KINDS: [(&str, BuildCache); 6] = [
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
        let err = |why: &str| OptionError::new(OptionField::BuildCache, s, why);
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
                OptionField::CacheScope,
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
            OptionField::Model,
            s,
            "empty model name; give e.g. `sonnet` or `opus`",
        ));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) || t.starts_with('-') || t.len() > 128
    {
        return Err(OptionError::new(
            OptionField::Model,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<CpuLimit>,
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
    /// Keep a local worktree in two-way sync with the sandbox (`--sync`/`--no-sync`); `None`:
    /// the backend table's `sync` key decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<bool>,
}

/// JSON (API bodies, stored rows) gets the same checks as the flags.
fn de_model<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = serde::Deserialize::deserialize(d)?;
    v.map(|m| parse_model(&m))
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// Option values as a user typed them (the CLI's flags, a form's fields), before validation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawOptions<'a> {
    /// `--hibernation-timeout`.
    pub hibernation_timeout: Option<&'a str>,
    /// `--cpu-limit`.
    pub cpu_limit: Option<&'a str>,
    /// `--memory-limit`.
    pub memory_limit: Option<&'a str>,
    /// `--build-cache` (comma-separated).
    pub build_cache: Option<&'a str>,
    /// `--cache-scope`.
    pub cache_scope: Option<&'a str>,
    /// `--model`.
    pub model: Option<&'a str>,
    /// `--plan-mode`.
    pub plan_mode: bool,
    /// `--print`.
    pub print: bool,
    /// `--sync` (`Some(true)`) / `--no-sync` (`Some(false)`).
    pub sync: Option<bool>,
}

impl RawOptions<'_> {
    /// Validates every value; the first bad one is the error and nothing else is looked at.
    pub fn validate(&self) -> Result<SessionOptions, OptionError> {
        Ok(SessionOptions {
            hibernation_timeout: self.hibernation_timeout.map(str::parse).transpose()?,
            cpu_limit: self.cpu_limit.map(parse_cpu_limit).transpose()?,
            memory_limit: self.memory_limit.map(str::parse).transpose()?,
            build_cache: self
                .build_cache
                .map(parse_build_caches)
                .transpose()?
                .unwrap_or_default(),
            cache_scope: self
                .cache_scope
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
            model: self.model.map(parse_model).transpose()?,
            plan_mode: self.plan_mode,
            print: self.print,
            sync: self.sync,
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
            assert_eq!(e.field.flag(), "--hibernation-timeout");
            assert!(
                e.to_string().contains("5m, 15m, 30m, 1h, 2h, 6h, never"),
                "{e}"
            );
        }
    }

    #[test]
    fn cpu_limits() {
        for (s, f, shown) in [
            ("1", 1.0, "1"),
            (" 8 ", 8.0, "8"),
            ("256", 256.0, "256"),
            ("0.5", 0.5, "0.5"),
            ("1.25", 1.25, "1.25"),
            ("2.0", 2.0, "2"),
        ] {
            let c = parse_cpu_limit(s).unwrap();
            assert_eq!(c.as_f64(), f, "{s}");
            assert_eq!(c.to_string(), shown);
        }
        for bad in [
            "0",
            "0.0",
            "-1",
            "two",
            "",
            "256.5",
            "257",
            "99999999999999999999",
        ] {
            let e = parse_cpu_limit(bad).unwrap_err();
            assert_eq!(e.field.flag(), "--cpu-limit", "{bad}");
            assert!(e.to_string().contains("at most 256"), "{e}");
        }
        assert!(
            parse_cpu_limit("0.125")
                .unwrap_err()
                .reason
                .contains("hundredths")
        );
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
            assert_eq!(e.field.flag(), "--memory-limit");
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
            assert_eq!(e.field.flag(), "--build-cache");
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
            assert_eq!(parse_model(bad).unwrap_err().field.flag(), "--model");
        }
    }

    #[test]
    fn from_flags_and_json() {
        let o = RawOptions {
            hibernation_timeout: Some("30m"),
            cpu_limit: Some("2"),
            memory_limit: Some("2G"),
            build_cache: Some("cargo,./t"),
            cache_scope: Some("session"),
            model: Some("opus"),
            plan_mode: true,
            print: false,
            sync: None,
        }
        .validate()
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
        let e = RawOptions {
            cpu_limit: Some("0"),
            ..RawOptions::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, OptionField::CpuLimit);
        assert_eq!(
            e.to_string(),
            "invalid value `0` for options.cpu_limit: the CPU count must be more than 0 and at \
             most 256, e.g. 2 or 0.5"
        );
        assert_eq!(
            e.for_flag(),
            "invalid value `0` for --cpu-limit: the CPU count must be more than 0 and at most \
             256, e.g. 2 or 0.5"
        );
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
            r#"{"cpu_limit":"two"}"#,
        ] {
            let e = serde_json::from_str::<SessionOptions>(bad).unwrap_err();
            assert!(
                e.to_string().contains("for options.cpu_limit"),
                "{bad}: {e}"
            );
        }
        let e = serde_json::from_str::<SessionOptions>(r#"{"cpu_limit":0}"#).unwrap_err();
        assert!(e.to_string().contains("at most 256"), "{e}");
        // A form field's text is accepted like the flag's.
        let o: SessionOptions = serde_json::from_str(r#"{"cpu_limit":"4"}"#).unwrap();
        assert_eq!(o.cpu_limit, Some(parse_cpu_limit("4").unwrap()));
        assert_eq!(
            serde_json::from_str::<SessionOptions>("{}").unwrap(),
            SessionOptions::default()
        );
    }
}
