//! Reading what an ELF executable needs at run time, as `file` and `readelf -d` would tell: its
//! program interpreter (`PT_INTERP`) and the shared libraries its dynamic section names
//! (`DT_NEEDED`). Written here, independently of the plugin's own check, so each tests the other.

/// What an executable asks of the system that runs it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Linkage {
    /// The loader it names (`/lib64/ld-linux-x86-64.so.2` for a dynamic glibc program).
    pub interpreter: Option<String>,
    /// How many shared libraries it needs (`DT_NEEDED` entries).
    pub needed: usize,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"))
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// The linkage of a 64-bit little-endian ELF file; panics on anything else.
pub fn linkage(b: &[u8]) -> Linkage {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NULL: u64 = 0;
    const DT_NEEDED: u64 = 1;
    assert!(b.starts_with(b"\x7fELF"), "not an ELF file");
    assert_eq!((b[4], b[5]), (2, 1), "not ELF64 little-endian");
    let phoff = u64_at(b, 0x20) as usize;
    let phentsize = usize::from(u16_at(b, 0x36));
    let phnum = usize::from(u16_at(b, 0x38));
    let mut out = Linkage::default();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let offset = u64_at(b, ph + 8) as usize;
        let filesz = u64_at(b, ph + 32) as usize;
        match u32_at(b, ph) {
            PT_INTERP => {
                let raw = &b[offset..offset + filesz];
                let text = raw.split(|c| *c == 0).next().unwrap_or_default();
                out.interpreter = Some(String::from_utf8_lossy(text).into_owned());
            }
            PT_DYNAMIC => {
                for entry in b[offset..offset + filesz].chunks_exact(16) {
                    match u64_at(entry, 0) {
                        DT_NULL => break,
                        DT_NEEDED => out.needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}
