//! hearsay-host's error type.

use std::path::PathBuf;

/// Why the host could not start or a handler could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The wasmtime engine could not be configured.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// A worker or ticker thread could not be started.
    #[error("starting host thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The module file could not be read.
    #[error("handler {name}: reading module {path}: {source}")]
    ReadModule {
        /// Handler name.
        name: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error("handler {name}: not a WebAssembly component (no \\0asm header)")]
    NotWasm {
        /// Handler name.
        name: String,
    },
    /// The bytes are a core module, not a component.
    #[error("handler {name}: a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)")]
    CoreModule {
        /// Handler name.
        name: String,
    },
    /// Validation or compilation failed.
    #[error("handler {name}: compiling component: {reason}")]
    Compile {
        /// Handler name.
        name: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component's imports or exports do not match the `hearsay:handler` world.
    #[error("handler {name}: does not fit the hearsay:handler world: {reason}")]
    Link {
        /// Handler name.
        name: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The limits ask for something the host cannot give.
    #[error("handler {name}: invalid limits: {reason}")]
    Limits {
        /// Handler name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A granted directory cannot be opened.
    #[error("handler {name}: granted directory {path}: {reason}")]
    Grant {
        /// Handler name.
        name: String,
        /// The directory.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// A capability cannot be given: a store that does not open, or a grant the component's
    /// contract version has no interface for.
    #[error("handler {name}: {reason}")]
    Capability {
        /// Handler name.
        name: String,
        /// The cause.
        reason: String,
    },
    /// The compiled-module cache directory (or its key file) is unsafe to use or cannot be set up.
    #[error("handler cache {dir}: {reason}")]
    Cache {
        /// The cache directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
