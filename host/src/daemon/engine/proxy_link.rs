//! The credential proxy's side of a session (DESIGN §10), backend-agnostic: at create the
//! session gets a proxy credential and placeholders, the trust bundle (system roots plus our
//! CA) is written inside the sandbox through the plugin's `exec`, the proxy is reached through
//! the plugin's `open_tunnel` when it has one (else directly: the sandbox shares the host's
//! network), and what the sandbox was given is persisted (`proxy::persist`) so a daemon restart
//! keeps the running agent's credential valid. The agent's environment comes from
//! [`Engine::agent_env`]; delete revokes the credential. Real secrets never enter a sandbox.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::home::Home;
use crate::plugins::ops::{self, Instance, OpenTunnelRequest};
use crate::plugins::{Capabilities, PluginClient};
use crate::proxy::persist::{self, SessionFile};
use crate::proxy::{CredentialProxy, Policy, ProxyError, SandboxOptions};
use crate::secrets::SecretResolver;
use crate::session::{SessionId, Status};
use crate::store::SessionRecord;

use super::super::error::EngineError;
use super::{Engine, sandbox_exec};

/// The port inside a tunnelled sandbox where the backend's relay listens for the agent.
pub const TUNNEL_PORT: u16 = 18080;

/// How long installing the trust bundle inside a sandbox may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the bundle goes, relative to the sandbox user's `$HOME`.
const BUNDLE_DIR: &str = ".clauderon";

/// Writes stdin to `$HOME/.clauderon/ca-bundle.pem` (atomically) and prints its path; then,
/// best effort, installs `$1` (our CA alone) into the sandbox's own system trust store, but
/// only when the sandbox is not this machine (`$2`: the host's machine id; empty = unknown =
/// never) and the store is writable (directly or through `sudo -n`).
const INSTALL_SCRIPT: &str = r#"set -e
d="${HOME:-/tmp}/.clauderon"
mkdir -p "$d"
umask 022
cat > "$d/ca-bundle.pem.tmp"
mv -f "$d/ca-bundle.pem.tmp" "$d/ca-bundle.pem"
printf 'bundle=%s\n' "$d/ca-bundle.pem"
store=/usr/local/share/ca-certificates
if [ -n "$2" ] && [ "$(cat /etc/machine-id 2>/dev/null || true)" != "$2" ] && [ -d "$store" ] \
   && command -v update-ca-certificates >/dev/null 2>&1; then
  s=""
  if [ ! -w "$store" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then s="sudo -n"; else
      echo "system-store=not-writable"; exit 0; fi
  fi
  if printf '%s' "$1" | $s tee "$store/clauderon.crt" >/dev/null \
     && $s update-ca-certificates >/dev/null 2>&1; then
    echo "system-store=installed"
  else
    echo "system-store=failed"
  fi
else
  echo "system-store=skipped"
fi
"#;

/// The daemon's running credential proxy and the home its session files live in.
#[derive(Debug)]
pub struct SessionProxy {
    proxy: CredentialProxy,
    home: Home,
}

impl SessionProxy {
    /// Starts the proxy on `listen` (loopback, checked by the config) with proxy.toml's policy.
    /// With port 0 the port bound last time is tried first, so sandboxes that reach the proxy
    /// directly keep a valid `HTTPS_PROXY` across daemon restarts.
    pub async fn start(
        home: &Home,
        listen: SocketAddr,
        resolver: SecretResolver,
    ) -> Result<Self, ProxyError> {
        let policy = Policy::load(home)?;
        let remembered = persist::last_listen(home)
            .filter(|a| listen.port() == 0 && a.ip() == listen.ip() && a.port() != 0);
        let proxy = match remembered {
            Some(prev) => {
                match CredentialProxy::start(home, policy.clone(), resolver.clone(), prev).await {
                    Ok(p) => p,
                    Err(ProxyError::Bind { .. }) => {
                        tracing::warn!(
                            "the credential proxy's previous address {prev} is taken; sandboxes \
                             that reach it directly need their agent restarted"
                        );
                        CredentialProxy::start(home, policy, resolver, listen).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => CredentialProxy::start(home, policy, resolver, listen).await?,
        };
        persist::save_listen(home, proxy.addr())?;
        Ok(Self {
            proxy,
            home: home.clone(),
        })
    }

    /// Where the proxy listens on the host.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// The proxy itself.
    pub fn proxy(&self) -> &CredentialProxy {
        &self.proxy
    }

    /// Stops accepting connections after the audit log is on disk.
    pub async fn stop(&self) {
        self.proxy.flush_audit().await;
        self.proxy.stop();
    }
}

/// The host's machine id, handed to the install script so it never touches this machine's
/// trust store (empty when unknown: the script then never installs into a system store).
fn host_machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Engine {
    /// Hands the engine the daemon's credential proxy (once, at daemon start).
    pub fn set_proxy(&self, proxy: SessionProxy) {
        if self.proxy.set(Arc::new(proxy)).is_err() {
            tracing::warn!("the credential proxy was set twice; keeping the first");
        }
    }

    /// The daemon's credential proxy, if it runs.
    pub fn credential_proxy(&self) -> Option<&Arc<SessionProxy>> {
        self.proxy.get()
    }

    /// Registers again, with the same credential and placeholders, every session whose
    /// sandbox was given them (daemon start, before reconcile); forgets deleted ones.
    pub async fn restore_proxy_sessions(&self) {
        let Some(p) = self.credential_proxy() else {
            return;
        };
        for id in persist::list(&p.home) {
            // Only a session the store says is gone loses its file (a store error keeps it).
            match self.store().get(id).await {
                Ok(r) if r.status != Status::Deleted => {}
                Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
                    let _ = persist::remove(&p.home, id);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(session = %id, "cannot look the session up: {e}");
                    continue;
                }
            }
            match persist::load(&p.home, id) {
                Ok(Some(f)) => {
                    p.proxy
                        .restore_session(id, f.password.clone(), &f.placeholders);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(session = %id, "cannot restore the proxy credential: {e}"),
            }
        }
    }

    /// Gives a new sandbox its proxy access: a credential (the persisted one when the session
    /// has it, else a fresh one), the tunnel if the backend has one, and the trust bundle
    /// written inside it; then persists what the sandbox holds. Without a proxy, or with a
    /// backend that cannot run commands, the agent runs without one (a `log` event says so).
    /// `stage`: the progress stage it reports under (`create`, `restore`).
    pub(super) async fn proxy_prepare(
        &self,
        rec: &SessionRecord,
        client: &Arc<PluginClient>,
        instance: &mut Instance,
        stage: &str,
    ) -> Result<(), EngineError> {
        let Some(p) = self.credential_proxy().cloned() else {
            return Ok(());
        };
        let id = rec.id;
        if !client.capabilities().contains(Capabilities::EXEC) {
            self.warn(
                id,
                format!(
                    "backend `{}` cannot run commands, so the credential proxy's trust bundle \
                     cannot be installed; the agent runs without the proxy (no credentials)",
                    client.name()
                ),
            )
            .await;
            return Ok(());
        }
        let proxy_err = |e: ProxyError| EngineError::Internal(e.to_string());
        let (password, placeholders) = match persist::load(&p.home, id).map_err(proxy_err)? {
            Some(f) => (f.password, f.placeholders),
            None => {
                let cred = p.proxy.register_session(id);
                (cred.password, p.proxy.placeholders(id).unwrap_or_default())
            }
        };
        p.proxy.restore_session(id, password.clone(), &placeholders);
        let proxy_addr = self.proxy_tunnel(&p, rec, client, instance).await?;
        self.progress(
            id,
            stage,
            "installing the credential proxy's trust bundle in the sandbox",
        )
        .await;
        let bundle_path = self.install_bundle(&p, client, instance).await?;
        persist::save(
            &p.home,
            id,
            &SessionFile {
                password,
                placeholders,
                proxy_addr,
                bundle_path,
            },
        )
        .map_err(proxy_err)
    }

    /// Opens the tunnel when the backend has one; returns the proxy's address as the
    /// sandbox sees it.
    async fn proxy_tunnel(
        &self,
        p: &SessionProxy,
        rec: &SessionRecord,
        client: &Arc<PluginClient>,
        instance: &mut Instance,
    ) -> Result<String, EngineError> {
        if !client.capabilities().contains(Capabilities::TUNNEL) {
            // The sandbox shares the host's network (a local backend): the proxy directly.
            return Ok(p.addr().to_string());
        }
        let opened = client
            .open_tunnel(&OpenTunnelRequest {
                instance: instance.clone(),
                remote_port: TUNNEL_PORT,
                host_addr: p.addr().to_string(),
            })
            .await
            .map_err(|e| EngineError::backend(client.name(), ops::OPEN_TUNNEL, e))?;
        if opened.instance != *instance {
            *instance = opened.instance;
            self.save_instance(rec.id, instance).await?;
        }
        Ok(format!("127.0.0.1:{TUNNEL_PORT}"))
    }

    async fn install_bundle(
        &self,
        p: &SessionProxy,
        client: &Arc<PluginClient>,
        instance: &Instance,
    ) -> Result<String, EngineError> {
        // The SandboxSetup's bundle does not depend on its path: ask for it with a placeholder
        // path, learn the real one (under the sandbox's $HOME) from the script.
        let ca = p.proxy.ca();
        let bundle = ca.trust_bundle_pem();
        let argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            INSTALL_SCRIPT.to_owned(),
            "sh".to_owned(),
            ca.cert_pem().to_owned(),
            host_machine_id(),
        ];
        let ran = sandbox_exec::run(
            client,
            instance,
            argv,
            bundle.as_bytes(),
            SETUP_TIMEOUT,
            "installing the proxy's trust bundle in the sandbox",
        )
        .await?;
        let (code, out, err) = (ran.code, ran.stdout_text(), ran.stderr_text());
        let path = out
            .lines()
            .find_map(|l| l.strip_prefix("bundle="))
            .map(str::to_owned);
        match path {
            Some(path) if code == 0 && path.starts_with('/') && path.contains(BUNDLE_DIR) => {
                if let Some(s) = out.lines().find_map(|l| l.strip_prefix("system-store=")) {
                    tracing::debug!("sandbox system trust store: {s}");
                }
                Ok(path)
            }
            _ => Err(EngineError::Internal(format!(
                "cannot write the credential proxy's trust bundle in the sandbox (`sh` exited \
                 {code}): {}",
                err.trim().chars().take(400).collect::<String>()
            ))),
        }
    }

    /// The proxy part of the agent's environment: placeholders, `HTTPS_PROXY` & co with the
    /// session's credential, trust-bundle variables. Empty when the session has no proxy
    /// access (no proxy, or a backend that cannot run commands).
    pub(super) async fn agent_env(
        &self,
        id: SessionId,
    ) -> Result<BTreeMap<String, String>, EngineError> {
        let Some(p) = self.credential_proxy() else {
            return Ok(BTreeMap::new());
        };
        let Some(f) =
            persist::load(&p.home, id).map_err(|e| EngineError::Internal(e.to_string()))?
        else {
            return Ok(BTreeMap::new());
        };
        p.proxy.restore_session(id, f.password, &f.placeholders);
        let mut opts = SandboxOptions::new(f.proxy_addr, f.bundle_path);
        opts.available_secrets = p.proxy.available_secrets().await;
        let setup = p
            .proxy
            .sandbox_env(id, &opts)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(setup.env)
    }

    /// Brings the sandbox's way back to the proxy after wake or a daemon restart (the tunnel;
    /// `reinstall`: the trust bundle too, after a checkpoint restore). Failures are recorded
    /// as a warning: the agent still runs, its requests fail until the next attempt.
    pub(super) async fn proxy_reconnect(&self, id: SessionId, reinstall: bool) {
        let Some(p) = self.credential_proxy().cloned() else {
            return;
        };
        if !matches!(persist::load(&p.home, id), Ok(Some(_))) {
            return;
        }
        let result = async {
            let rec = self.store().get(id).await?;
            let client = self.backends().get(&rec.backend)?;
            let Some(mut instance) = Engine::instance_of(&rec) else {
                return Ok(());
            };
            if reinstall {
                self.proxy_prepare(&rec, &client, &mut instance, "restore")
                    .await
            } else {
                self.proxy_tunnel(&p, &rec, &client, &mut instance)
                    .await
                    .map(|_| ())
            }
        }
        .await;
        if let Err(e) = result {
            self.warn(
                id,
                format!("cannot reconnect the sandbox to the credential proxy: {e}"),
            )
            .await;
        }
    }

    /// Revokes the session's proxy credential and forgets what its sandbox was given.
    pub(super) fn proxy_forget(&self, id: SessionId) {
        let Some(p) = self.credential_proxy() else {
            return;
        };
        p.proxy.revoke_session(id);
        if let Err(e) = persist::remove(&p.home, id) {
            tracing::warn!(session = %id, "cannot remove the proxy credential file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    /// Runs [`INSTALL_SCRIPT`] as the sandbox would (`sh -c SCRIPT sh CA_PEM MACHINE_ID`, the
    /// bundle on stdin) with `HOME` and the system store (`/usr/local/share/ca-certificates`)
    /// moved into a temporary directory and a fake `update-ca-certificates` on `PATH`, so this
    /// machine's own store is never touched. Returns (dir, stdout, exit code).
    fn run_install_script(machine_id: &str) -> (tempfile::TempDir, String, Option<i32>) {
        let tmp = tempfile::tempdir().unwrap();
        let (home, store, bin) = (
            tmp.path().join("home"),
            tmp.path().join("store"),
            tmp.path().join("bin"),
        );
        for d in [&home, &store, &bin] {
            std::fs::create_dir_all(d).unwrap();
        }
        let fake = bin.join("update-ca-certificates");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho ran > '{}'\n",
                tmp.path().join("updated").display()
            ),
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let script = INSTALL_SCRIPT.replace(
            "store=/usr/local/share/ca-certificates",
            &format!("store='{}'", store.display()),
        );
        assert_ne!(script, INSTALL_SCRIPT, "the store line moved");
        let mut child = Command::new("sh")
            .args(["-c", &script, "sh", "OUR-CA-PEM", machine_id])
            .env("HOME", &home)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"ROOTS+OUR-CA")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            tmp,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    }

    #[test]
    fn the_ca_goes_into_a_sandbox_system_store_but_never_this_machines() {
        // A sandbox that is another machine: the bundle is written and printed, and our CA
        // (alone, never the bundle) goes into its system store, which is then rebuilt.
        let (tmp, out, code) = run_install_script("another-machine-id");
        assert_eq!(code, Some(0), "{out}");
        let bundle = tmp.path().join("home/.clauderon/ca-bundle.pem");
        assert!(
            out.contains(&format!("bundle={}\n", bundle.display())),
            "{out}"
        );
        assert_eq!(std::fs::read(&bundle).unwrap(), b"ROOTS+OUR-CA");
        assert!(out.contains("system-store=installed"), "{out}");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("store/clauderon.crt")).unwrap(),
            "OUR-CA-PEM"
        );
        assert!(tmp.path().join("updated").exists());

        // The sandbox is this machine (its machine id is the host's), or the host's id is
        // unknown: the bundle only, the store is left alone.
        let this_machine = host_machine_id();
        assert!(!this_machine.is_empty(), "this test needs /etc/machine-id");
        for id in [this_machine.as_str(), ""] {
            let (tmp, out, code) = run_install_script(id);
            assert_eq!(code, Some(0), "{out}");
            assert!(out.contains("bundle="), "{out}");
            assert!(out.contains("system-store=skipped"), "{id:?}: {out}");
            assert!(!tmp.path().join("store/clauderon.crt").exists(), "{id:?}");
            assert!(!tmp.path().join("updated").exists(), "{id:?}");
        }
    }
}
