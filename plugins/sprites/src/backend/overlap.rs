//! After a dropped attach socket is reconnected, the server replays its recent output; the part
//! the host has already seen is found here so it is not shown twice.

/// How much forwarded output is remembered for the comparison (the replay is at most this long
/// on the emulator and, as documented, on the service).
pub const TAIL: usize = 64 * 1024;

/// The recent output already forwarded to the host.
#[derive(Debug, Default)]
pub struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    /// Remembers forwarded bytes (keeping the last [`TAIL`]).
    pub fn push(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
        if self.bytes.len() > TAIL {
            let cut = self.bytes.len() - TAIL;
            self.bytes.drain(..cut);
        }
    }

    /// The part of `replay` that is new: `replay` minus its longest prefix that is a suffix of
    /// what was already forwarded (linear time: a prefix function over `replay ++ sep ++ tail`).
    pub fn fresh<'a>(&self, replay: &'a [u8]) -> &'a [u8] {
        let seq: Vec<u16> = replay
            .iter()
            .map(|&b| u16::from(b))
            .chain(std::iter::once(256))
            .chain(self.bytes.iter().map(|&b| u16::from(b)))
            .collect();
        let mut pi = vec![0usize; seq.len()];
        for i in 1..seq.len() {
            let mut k = pi[i - 1];
            while k > 0 && seq[i] != seq[k] {
                k = pi[k - 1];
            }
            if seq[i] == seq[k] {
                k += 1;
            }
            pi[i] = k;
        }
        let m = pi.last().copied().unwrap_or(0).min(replay.len());
        &replay[m..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_what_was_already_seen() {
        let mut t = Tail::default();
        t.push(b"hello world\r\nline two\r\n");
        assert_eq!(
            t.fresh(b"world\r\nline two\r\nline three\r\n"),
            b"line three\r\n"
        );
        assert_eq!(t.fresh(b"something else"), b"something else");
        assert_eq!(t.fresh(b""), b"");
        let empty = Tail::default();
        assert_eq!(empty.fresh(b"abc"), b"abc");
        let mut big = Tail::default();
        big.push(&vec![b'x'; TAIL + 10]);
        assert_eq!(big.bytes.len(), TAIL);
        assert_eq!(big.fresh(&[b'x'; 100]), b"");
    }
}
