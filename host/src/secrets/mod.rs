//! Named secrets: one resolver with a documented precedence, held in a redacting type.
//!
//! Precedence for secret `name` (first that supplies a value wins):
//! 1. the environment variable (`SPRITES_API_KEY` for `sprites_api_key`, or what the plugin
//!    declares; `github_token` also reads `GH_TOKEN`);
//! 2. the file `$CLAUDERON_HOME/secrets/<name>` (refused unless only its owner can read it);
//! 3. a 1Password reference in proxy.toml `[onepassword.credentials]`, read with `op read`;
//! 4. a literal in config.toml: `[secrets] <name>` or the key a plugin declares in its table
//!    (accepted with a warning).
//!
//! A value from 1, 2 or 4 that is itself an `op://` reference is resolved through `op` too.

mod onepassword;
mod resolver;
mod secret;

pub use onepassword::OpError;
pub use resolver::{
    CredentialStatus, Resolved, SecretError, SecretResolver, SecretSource, SecretSpec,
};
pub use secret::{REDACTED, Secret};

/// Whether `name` can name a secret: 1 to 64 of lowercase letters, digits and `_`. Names are
/// file names under `secrets/`, so nothing else (no `/`, no `..`) is allowed.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
