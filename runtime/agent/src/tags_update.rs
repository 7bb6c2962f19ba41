//! Changing this node's tags at run time (RPC's `tags` command, a handler's `tags` grant):
//! read-modify-write of the local tags, serialised, with the `-tags-file` written before the
//! tags are announced, as Serf does.

use crate::node::{self, Node};
use std::collections::BTreeMap;
use std::path::Path;

/// Why [`update`] failed.
#[derive(Debug)]
pub(crate) enum UpdateError {
    /// Writing the tags file failed (the message is Serf's client text).
    File(String),
    /// The agent refused the tags.
    Node(node::Error),
}

/// Serialises read-modify-write of this node's tags, so two changes at once (a handler and an
/// RPC client, two handlers) both land.
static UPDATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sets `set` and removes `delete` among this node's tags, writes the tags file (when there is
/// one) and then announces them, as Serf does.
pub(crate) async fn update(
    agent: &Node,
    file: Option<&Path>,
    set: BTreeMap<String, String>,
    delete: &[String],
) -> std::result::Result<(), UpdateError> {
    let _one = UPDATING.lock().await;
    let mut tags = agent.local_member().await.map_err(UpdateError::Node)?.tags;
    tags.retain(|k, _| !delete.contains(k));
    tags.extend(set);
    if let Some(path) = file {
        write(path, &tags).map_err(UpdateError::File)?;
    }
    agent.set_tags(tags).await.map_err(UpdateError::Node)
}

/// Writes the tags as a `-tags-file` holds them: Go's `json.Marshal` of the map, and a
/// newline. The error is Serf's client text.
fn write(path: &Path, tags: &BTreeMap<String, String>) -> std::result::Result<(), String> {
    let mut text = crate::conventions::json::to_string(tags)
        .map_err(|e| format!("Failed to encode tags: {e}"))?;
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|e| format!("Failed to write tags file {}: {e}", path.display()))
}
