//! The proxy's certificate authority: one per installation, its key kept on the host (0600),
//! and leaf certificates per intercepted host signed by it and cached in memory.
//!
//! Unlike hudsucker, each leaf has its own key pair, so a leaf key is never the CA key.

use super::ProxyError;
use crate::home::{Home, write_private_file};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::fs::{DirBuilder, File};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The CA's common name (fixed, so the signer can be rebuilt from the key alone).
const CA_NAME: &str = "clauderon credential proxy CA";
/// How long a leaf certificate is valid.
const LEAF_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// A cached leaf is replaced after this long (well before it expires).
const LEAF_REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most hosts kept in the leaf cache; beyond it the cache starts over.
const LEAF_CACHE_MAX: usize = 1024;

/// `$CLAUDERON_HOME/proxy/`: the CA's files.
pub fn proxy_dir(home: &Home) -> PathBuf {
    home.root().join("proxy")
}
/// `proxy/ca-key.pem`: the CA private key (0600; never leaves the host).
pub fn ca_key_file(home: &Home) -> PathBuf {
    proxy_dir(home).join("ca-key.pem")
}
/// `proxy/ca.pem`: the CA certificate (public; sandboxes get it in their trust bundle).
pub fn ca_cert_file(home: &Home) -> PathBuf {
    proxy_dir(home).join("ca.pem")
}

/// The installation's CA, able to sign leaf certificates for any host.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    leaves: Mutex<HashMap<String, (Instant, Arc<rustls::ServerConfig>)>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("name", &CA_NAME)
            .finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    dn.push(DnType::OrganizationName, "clauderon");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    super::stream::crypto_provider()
}

/// Reads a private file, refusing one that group or others can read (like OpenSSH).
fn read_private(path: &Path) -> Result<Option<String>, ProxyError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProxyError::io(path, e)),
    };
    let meta = f.metadata().map_err(|e| ProxyError::io(path, e))?;
    if meta.mode() & 0o077 != 0 {
        return Err(ProxyError::CaPermissions {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o777,
        });
    }
    let mut s = String::new();
    f.read_to_string(&mut s)
        .map_err(|e| ProxyError::io(path, e))?;
    Ok(Some(s))
}

impl CertificateAuthority {
    /// Loads the installation's CA from `home`, creating it on first use: the key is written
    /// 0600 and refused if group or others can read it.
    pub fn load_or_create(home: &Home) -> Result<Self, ProxyError> {
        let dir = proxy_dir(home);
        if !dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| ProxyError::io(&dir, e))?;
        }
        let key_path = ca_key_file(home);
        let cert_path = ca_cert_file(home);
        let key = match read_private(&key_path)? {
            Some(pem) => KeyPair::from_pem(&pem).map_err(|e| ProxyError::CaFile {
                path: key_path.clone(),
                reason: format!(
                    "not a PEM private key ({e}); delete {} and {} to make a new CA",
                    key_path.display(),
                    cert_path.display()
                ),
            })?,
            None => {
                let key = KeyPair::generate().map_err(ProxyError::cert)?;
                write_private_file(&key_path, key.serialize_pem().as_bytes())
                    .map_err(|e| ProxyError::Home(e.to_string()))?;
                // A new key makes any old certificate useless.
                let _ = std::fs::remove_file(&cert_path);
                key
            }
        };
        let cert_pem = match std::fs::read_to_string(&cert_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut params = ca_params();
                let now = time::OffsetDateTime::now_utc();
                params.not_before = now - time::Duration::hours(1);
                params.not_after = now + time::Duration::days(5 * 365);
                let cert = params.self_signed(&key).map_err(ProxyError::cert)?;
                let pem = cert.pem();
                write_private_file(&cert_path, pem.as_bytes())
                    .map_err(|e| ProxyError::Home(e.to_string()))?;
                pem
            }
            Err(e) => return Err(ProxyError::io(&cert_path, e)),
        };
        let cert_der = pem_to_der(&cert_pem).ok_or_else(|| ProxyError::CaFile {
            path: cert_path.clone(),
            reason: "not a PEM certificate; delete it and it is made again from the key".into(),
        })?;
        Ok(Self {
            issuer: Issuer::new(ca_params(), key),
            cert_pem,
            cert_der,
            leaves: Mutex::new(HashMap::new()),
            provider: ring(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The trust bundle for a sandbox: the Mozilla root set (what a Linux system store holds)
    /// followed by this CA. Never this CA alone: pass-through TLS must keep working.
    pub fn trust_bundle_pem(&self) -> String {
        let mut out = String::with_capacity(256 * 1024);
        for root in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            out.push_str(&der_to_pem(root.as_ref()));
        }
        out.push_str("# clauderon credential proxy CA\n");
        out.push_str(&self.cert_pem);
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out
    }

    /// A TLS server config presenting a leaf certificate for `host`, from the cache when one
    /// is fresh.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, ProxyError> {
        let mut leaves = self
            .leaves
            .lock()
            .map_err(|_| ProxyError::Internal("leaf cache lock poisoned"))?;
        if let Some((made, cfg)) = leaves.get(host)
            && made.elapsed() < LEAF_REFRESH
        {
            return Ok(cfg.clone());
        }
        let cfg = Arc::new(self.make_leaf(host)?);
        if leaves.len() >= LEAF_CACHE_MAX {
            leaves.clear();
        }
        leaves.insert(host.to_string(), (Instant::now(), cfg.clone()));
        Ok(cfg)
    }

    /// How many leaf certificates are cached (tests and diagnostics).
    pub fn cached_leaves(&self) -> usize {
        self.leaves.lock().map(|l| l.len()).unwrap_or(0)
    }

    fn make_leaf(&self, host: &str) -> Result<rustls::ServerConfig, ProxyError> {
        let (cert, key) = self.issue_leaf(host)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert, self.cert_der.clone()], key_der)
            .map_err(|e| ProxyError::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Our suite order (AES-128-GCM first), whatever the client prefers among them.
        cfg.ignore_client_order = true;
        Ok(cfg)
    }

    /// Issues a leaf certificate for `host` with a fresh key pair of its own.
    fn issue_leaf(&self, host: &str) -> Result<(CertificateDer<'static>, KeyPair), ProxyError> {
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(ProxyError::cert)?;
        params.distinguished_name.push(DnType::CommonName, host);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::seconds(60);
        params.not_after = now + LEAF_VALIDITY;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let mut serial = [0u8; 16];
        rand_bytes(&mut serial);
        serial[0] &= 0x7f;
        params.serial_number = Some(serial.to_vec().into());
        let key = KeyPair::generate().map_err(ProxyError::cert)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(ProxyError::cert)?;
        Ok((cert.der().clone(), key))
    }
}

/// Fills `buf` with random bytes from the system generator.
pub(crate) fn rand_bytes(buf: &mut [u8]) {
    // ring's generator reads the OS; it fails only if the OS has no randomness at all, in
    // which case nothing here can be made safely, so fall back to UUIDs (also OS random).
    if rustls::crypto::ring::default_provider()
        .secure_random
        .fill(buf)
        .is_err()
    {
        for chunk in buf.chunks_mut(16) {
            let u = uuid::Uuid::new_v4();
            chunk.copy_from_slice(&u.as_bytes()[..chunk.len()]);
        }
    }
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Encodes one DER certificate as PEM.
pub fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Decodes the first certificate of a PEM text.
pub fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    pem_certs(pem).into_iter().next()
}

/// Every certificate in a PEM text.
pub fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            if let Some(b64) = cur.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64)
            {
                out.push(CertificateDer::from(der));
            }
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ca_is_made_once_private_and_signs_verifiable_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path());
        let ca = CertificateAuthority::load_or_create(&home).unwrap();
        let mode = std::fs::metadata(ca_key_file(&home))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = CertificateAuthority::load_or_create(&home).unwrap();
        assert_eq!(
            ca.cert_pem(),
            again.cert_pem(),
            "the CA is per installation"
        );

        // A leaf from the reloaded CA verifies against the original certificate.
        let cfg = again.server_config("api.anthropic.com").unwrap();
        let same = again.server_config("api.anthropic.com").unwrap();
        assert!(Arc::ptr_eq(&cfg, &same), "leaves are cached");
        assert_eq!(again.cached_leaves(), 1);
        let (leaf, leaf_key) = again.issue_leaf("api.anthropic.com").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), ring())
                .build()
                .unwrap();
        let name = rustls::pki_types::ServerName::try_from("api.anthropic.com").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        let other = rustls::pki_types::ServerName::try_from("github.com").unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], rustls::pki_types::UnixTime::now())
                .is_err()
        );
        // Its key is not the CA's key.
        let ca_key = std::fs::read_to_string(ca_key_file(&home)).unwrap();
        let ca_kp = KeyPair::from_pem(&ca_key).unwrap();
        assert_ne!(leaf_key.public_key_pem(), ca_kp.public_key_pem());
    }

    #[test]
    fn bundle_holds_system_roots_and_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path());
        let ca = CertificateAuthority::load_or_create(&home).unwrap();
        let bundle = ca.trust_bundle_pem();
        let certs = pem_certs(&bundle);
        assert!(certs.len() > 100, "Mozilla roots are in the bundle");
        assert_eq!(certs.last().unwrap(), ca.cert_der());
        assert_eq!(
            certs[0].as_ref(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref()
        );
    }

    #[test]
    fn a_readable_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::new(tmp.path());
        CertificateAuthority::load_or_create(&home).unwrap();
        let key = ca_key_file(&home);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = CertificateAuthority::load_or_create(&home)
            .unwrap_err()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
