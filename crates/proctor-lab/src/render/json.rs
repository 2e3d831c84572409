//! The JSON form: the [`Report`] itself, pretty-printed. Its schema is versioned by
//! [`crate::report::SCHEMA_VERSION`], carried in the `schema_version` field.

use anyhow::Context;

use crate::report::Report;

/// The report as pretty JSON, ending with a newline.
///
/// # Errors
///
/// Fails only if serde_json cannot serialize the report (it has no map with non-string keys, so
/// this does not happen in practice).
pub fn render(report: &Report) -> anyhow::Result<String> {
    let mut out = serde_json::to_string_pretty(report).context("serializing the report to JSON")?;
    out.push('\n');
    Ok(out)
}
