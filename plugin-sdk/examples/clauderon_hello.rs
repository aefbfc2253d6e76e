//! The guide's example plugin: `hello`, a backend that only answers `check_auth` and `status`.
//! Build it with `cargo build -p clauderon-plugin-sdk --example clauderon_hello`; the library is
//! `target/debug/examples/libclauderon_hello.so`.

use clauderon_plugin_sdk::ops::{
    CheckAuthRequest, CheckAuthResponse, InstanceRequest, InstanceStatus, StatusResponse,
};
use clauderon_plugin_sdk::{
    Backend, CallContext, Capabilities, ConfigKeyBuilder, DetailsBuilder, HostContext, Plugin,
    PluginDetails, PluginError, SecretDeclBuilder,
};

/// The plugin type: identity, declarations and `init`.
pub struct Hello;

/// The backend `init` returns; one per process.
pub struct HelloBackend {
    greeting: String,
}

impl Backend for HelloBackend {
    async fn check_auth(
        &self,
        ctx: CallContext,
        _req: CheckAuthRequest,
    ) -> Result<CheckAuthResponse, PluginError> {
        // Logs go to the host's log; never log secret values.
        tracing::info!("checking credentials");
        let token = ctx.host().secret("hello_token").await?;
        Ok(CheckAuthResponse {
            account: Some(self.greeting.clone()),
            detail: Some(if token.is_some() {
                "token set".into()
            } else {
                "no token (hello does not need one)".into()
            }),
        })
    }

    async fn status(
        &self,
        ctx: CallContext,
        req: InstanceRequest,
    ) -> Result<StatusResponse, PluginError> {
        ctx.progress("status", "asking the provider", None);
        Ok(StatusResponse {
            instance: req.instance,
            status: InstanceStatus::Running,
        })
    }
}

impl Plugin for Hello {
    const NAME: &'static str = "hello";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "The plugin SDK guide's example";
    // Only what the backend implements; everything else answers Unsupported.
    const CAPABILITIES: Capabilities = Capabilities::CHECK_AUTH.union(Capabilities::LIFECYCLE);

    type Backend = HelloBackend;

    fn details() -> PluginDetails {
        DetailsBuilder::new()
            .config_key(
                ConfigKeyBuilder::new(
                    "greeting",
                    "string",
                    "What check_auth reports as the account",
                )
                .with_default("hello"),
            )
            .secret(
                SecretDeclBuilder::new("hello_token", "An optional token").with_env("HELLO_TOKEN"),
            )
            .build()
    }

    fn init(_host: HostContext, config: serde_json::Value) -> Result<HelloBackend, PluginError> {
        let greeting = match config.get("greeting") {
            None => "hello".to_owned(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(PluginError::invalid_request(
                    "[hello] greeting must be a string",
                ));
            }
        };
        Ok(HelloBackend { greeting })
    }
}

clauderon_plugin_sdk::export_plugin!(Hello);
