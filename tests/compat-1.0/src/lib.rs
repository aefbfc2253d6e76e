//! `compat`: a plugin written against plugin API 1.0.0 as it shipped (the frozen crate under
//! `vendor/`, whose SDK lived in the same crate). The host must keep loading it: it exercises
//! every path across the boundary: info and details, init with config, the host's services
//! (secret, events, logs, version), a call awaited on the plugin's runtime, an error with
//! causes, an op outside its capabilities, and an exec stream handed over as an fd.

use clauderon_plugin_api::ops::{
    CheckAuthRequest, CheckAuthResponse, ExecRequest, InstanceRequest, InstanceResponse,
    InstanceStatus, StatusResponse, StreamStarted,
};
use clauderon_plugin_api::stream::{Frame, FrameKind, FrameStream};
use clauderon_plugin_api::{
    Backend, CallContext, Capabilities, ConfigKey, ErrorKind, HostContext, Plugin, PluginDetails,
    PluginError, SecretDecl,
};

/// The plugin.
pub struct CompatPlugin;

/// The backend.
pub struct CompatBackend {
    greeting: String,
}

impl Backend for CompatBackend {
    async fn check_auth(
        &self,
        ctx: CallContext,
        _req: CheckAuthRequest,
    ) -> Result<CheckAuthResponse, PluginError> {
        tracing::info!(request_id = ctx.request_id(), "compat check_auth called");
        let token = ctx.secret("compat_token").await?;
        // A timer: needs the plugin's own runtime, not the host's.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        Ok(CheckAuthResponse {
            account: Some(format!("{}-1.0", self.greeting)),
            detail: Some(format!(
                "token of {} bytes, host {}",
                token.expose().len(),
                ctx.host().host_version()
            )),
        })
    }

    async fn status(
        &self,
        ctx: CallContext,
        mut req: InstanceRequest,
    ) -> Result<StatusResponse, PluginError> {
        ctx.progress("compat", "built against plugin API 1.0.0", None);
        req.instance.state =
            serde_json::json!({"built_against": clauderon_plugin_api::API_VERSION});
        Ok(StatusResponse {
            instance: req.instance,
            status: InstanceStatus::Running,
        })
    }

    async fn start(
        &self,
        _ctx: CallContext,
        _req: InstanceRequest,
    ) -> Result<InstanceResponse, PluginError> {
        Err(
            PluginError::new(ErrorKind::Conflict, "compat sandboxes never start")
                .with_cause("by design of the fixture"),
        )
    }

    async fn exec(
        &self,
        _ctx: CallContext,
        req: ExecRequest,
        stream: FrameStream,
    ) -> Result<StreamStarted, PluginError> {
        tokio::spawn(reply_once(req.command.join(" "), stream));
        Ok(StreamStarted::default())
    }
}

/// Answers an exec once its stdin ends: `<command>: <stdin>`, then exits 3.
async fn reply_once(command: String, stream: FrameStream) {
    let (mut rx, mut tx) = stream.split();
    let mut stdin = Vec::new();
    while let Ok(Some(frame)) = rx.read_frame().await {
        if frame.kind == FrameKind::StdinEof {
            break;
        }
        stdin.extend(frame.payload);
    }
    let reply = format!("{command}: {}\n", String::from_utf8_lossy(&stdin));
    let _ = tx.write_frame(&Frame::new(FrameKind::Stdout, reply)).await;
    let _ = tx.write_frame(&Frame::exit(3)).await;
}

impl Plugin for CompatPlugin {
    const NAME: &'static str = "compat";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "fixture: built against plugin API 1.0.0";
    const CAPABILITIES: Capabilities = Capabilities::LIFECYCLE
        .union(Capabilities::EXEC)
        .union(Capabilities::CHECK_AUTH);
    type Backend = CompatBackend;

    fn details() -> PluginDetails {
        PluginDetails {
            config_keys: vec![ConfigKey {
                name: "greeting".into(),
                ty: "string".into(),
                description: "Prefix of the account name".into(),
                default: Some("compat".into()),
            }],
            secrets: vec![SecretDecl {
                name: "compat_token".into(),
                env: Some("COMPAT_FIXTURE_TOKEN".into()),
                config_key: None,
                description: "A token for the fixture".into(),
            }],
        }
    }

    fn init(_host: HostContext, config: serde_json::Value) -> Result<CompatBackend, PluginError> {
        let greeting = config
            .get("greeting")
            .and_then(|g| g.as_str())
            .unwrap_or("compat")
            .to_owned();
        Ok(CompatBackend { greeting })
    }
}

clauderon_plugin_api::export_plugin!(CompatPlugin);
