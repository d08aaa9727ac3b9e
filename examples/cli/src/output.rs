//! How results are printed: text for people, or JSON (`--json`) for scripts.

use std::io::Write;

use serde::Serialize;

/// Prints `value` as one line of JSON, or `text` when JSON was not asked for.
pub(crate) fn emit(
    out: &mut dyn Write,
    json: bool,
    value: &impl Serialize,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, value)?;
        writeln!(out)?;
    } else {
        let text = text();
        if !text.is_empty() {
            writeln!(out, "{text}")?;
        }
    }
    Ok(())
}
