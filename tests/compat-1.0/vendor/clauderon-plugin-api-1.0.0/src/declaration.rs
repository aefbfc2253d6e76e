//! The plugin declaration: a plain `#[repr(C)]` static every plugin exports next to its root
//! module. Its layout is frozen forever (across plugin-api majors), so the host can read it with
//! `libloading` before abi_stable runs its layout checks and refuse another major cleanly.

/// The symbol name of the declaration static, as exported by `export_plugin!`.
pub const DECLARATION_SYMBOL: &str = "CLAUDERON_PLUGIN_DECLARATION";

/// The magic bytes at the start of every declaration.
pub const MAGIC: [u8; 16] = *b"CLAUDERON-PLUGIN";

/// Length of the NUL-padded version field.
pub const VERSION_LEN: usize = 32;

/// What a plugin declares about the contract it was built against. Frozen layout.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginDeclaration {
    /// Always [`MAGIC`].
    pub magic: [u8; 16],
    /// The ABI epoch (see [`crate::ABI_EPOCH`]).
    pub abi_epoch: u32,
    /// The plugin-api version the plugin was built against, NUL-padded UTF-8.
    pub api_version: [u8; VERSION_LEN],
}

impl PluginDeclaration {
    /// The declaration of the plugin-api this crate is.
    pub const CURRENT: PluginDeclaration = PluginDeclaration {
        magic: MAGIC,
        abi_epoch: crate::ABI_EPOCH,
        api_version: pad_version(crate::API_VERSION),
    };

    /// The declared plugin-api version, if the field holds valid UTF-8.
    pub fn api_version(&self) -> Option<&str> {
        let end = self
            .api_version
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(VERSION_LEN);
        std::str::from_utf8(&self.api_version[..end]).ok()
    }

    /// Whether the magic bytes match.
    pub fn has_magic(&self) -> bool {
        self.magic == MAGIC
    }
}

const fn pad_version(v: &str) -> [u8; VERSION_LEN] {
    let bytes = v.as_bytes();
    assert!(bytes.len() < VERSION_LEN, "version string too long");
    let mut out = [0u8; VERSION_LEN];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_declaration_round_trips_version() {
        let d = PluginDeclaration::CURRENT;
        assert!(d.has_magic());
        assert_eq!(d.api_version(), Some(crate::API_VERSION));
        assert_eq!(d.abi_epoch, crate::ABI_EPOCH);
    }
}
