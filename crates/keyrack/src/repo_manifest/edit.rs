//! Line-based editing of `keyrack.yml` that adds or removes one key in one env section and
//! keeps every other byte (comments, order, quoting, line endings) as it was.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsio;

/// Adds `key` to `env.<env>` (creating the section at the end if absent). Returns the new text,
/// or `None` if the key is already listed there.
pub(crate) fn add_key(text: &str, env: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let Some(head) = find_section(&lines, env) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(eol);
        }
        out.push_str(&format!("env.{env}:{eol}  - {key}{eol}"));
        return Some(out);
    };
    let (before_comment, comment) = split_comment(after_colon(lines[head]));
    let inline = before_comment.trim();
    if inline.starts_with('[') {
        let mut items = flow_items(inline)?;
        if items.iter().any(|i| i == key) {
            return None;
        }
        items.push(key.to_string());
        let prefix = &lines[head][..lines[head].find(':').expect("section line has a colon") + 1];
        let mut new_line = format!("{prefix} [{}]", items.join(", "));
        if let Some(c) = comment {
            new_line.push(' ');
            new_line.push_str(c.trim_end_matches(['\r', '\n']));
        }
        new_line.push_str(eol);
        return Some(replace_lines(&lines, head, head + 1, &[new_line]));
    }
    let end = section_end(&lines, head);
    let items = block_items(&lines, head, end);
    if items.iter().any(|(_, _, name)| name == key) {
        return None;
    }
    let (insert_at, indent) = match items.last() {
        Some((_, last_end, _)) => {
            let first = lines[items[0].0];
            let indent = &first[..first.len() - first.trim_start().len()];
            (*last_end, indent.to_string())
        }
        None => (head + 1, "  ".to_string()),
    };
    // The line before the insertion point may be the file's last line, without a newline.
    let needs_break = insert_at > 0 && !lines[insert_at - 1].ends_with('\n');
    let new_line = if needs_break {
        format!("{eol}{indent}- {key}")
    } else {
        format!("{indent}- {key}{eol}")
    };
    Some(replace_lines(&lines, insert_at, insert_at, &[new_line]))
}

/// Removes `key` from `env.<env>`. Returns the new text, or `None` if it is not listed there.
pub(crate) fn remove_key(text: &str, env: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let head = find_section(&lines, env)?;
    let (before_comment, comment) = split_comment(after_colon(lines[head]));
    let inline = before_comment.trim();
    if inline.starts_with('[') {
        let items = flow_items(inline)?;
        if !items.iter().any(|i| i == key) {
            return None;
        }
        let kept: Vec<String> = items.into_iter().filter(|i| i != key).collect();
        let line = lines[head];
        let eol = &line[line.trim_end_matches(['\r', '\n']).len()..];
        let prefix = &line[..line.find(':').expect("colon") + 1];
        let mut new_line = if kept.is_empty() {
            format!("{prefix} []")
        } else {
            format!("{prefix} [{}]", kept.join(", "))
        };
        if let Some(c) = comment {
            new_line.push(' ');
            new_line.push_str(c.trim_end_matches(['\r', '\n']));
        }
        new_line.push_str(eol);
        return Some(replace_lines(&lines, head, head + 1, &[new_line]));
    }
    let end = section_end(&lines, head);
    let items = block_items(&lines, head, end);
    let (start, stop, _) = items.iter().find(|(_, _, name)| name == key)?;
    Some(replace_lines(&lines, *start, *stop, &[]))
}

/// Reads, edits and atomically rewrites the manifest file (keeping its mode). When the file is a
/// symbolic link (a dotfile manager's), the link's target is rewritten and the link kept.
/// Callers hold the owner's writer lock, so the read and the write see no other keyrack writer.
pub(crate) fn edit_file(path: &Path, edit: impl FnOnce(&str) -> Option<String>) -> Result<bool> {
    let bytes = fsio::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Manifest {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: "not UTF-8 text".into(),
        hint: Some("save keyrack.yml as UTF-8".into()),
    })?;
    let Some(new_text) = edit(&text) else {
        return Ok(false);
    };
    check_one_key_changed(path, &text, &new_text)?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    fsio::write_atomic_through_links(path, new_text.as_bytes(), mode)?;
    Ok(true)
}

/// The line editor understands the YAML keyrack writes, not every YAML: a manifest using tags,
/// anchors or aliases could be edited into something else. Both texts are parsed, and the edit
/// is written only if exactly one key of one env was added or removed and nothing else changed.
fn check_one_key_changed(path: &Path, old: &str, new: &str) -> Result<()> {
    use std::collections::BTreeSet;
    type Keys = BTreeSet<(String, String, Option<String>, Option<String>)>;
    let flatten = |m: &super::RawManifest| -> Keys {
        let all = m.all.iter().map(|k| ("all".to_string(), k));
        m.envs
            .iter()
            .flat_map(|(env, keys)| keys.iter().map(move |k| (env.clone(), k)))
            .chain(all)
            .map(|(env, k)| {
                (
                    env,
                    k.key.clone(),
                    k.optional_if_has.clone(),
                    k.hint.clone(),
                )
            })
            .collect()
    };
    let refuse = |why: String| {
        Error::Manifest {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("keyrack cannot edit this file safely: {why}; it was left unchanged"),
        hint: Some(
            "add or remove the key under its env.<env>: section by hand (keyrack's editor does not handle YAML tags, anchors or aliases)"
                .into(),
        ),
    }
    };
    let before = super::RawManifest::from_bytes(path, old.as_bytes().to_vec())?;
    let after = super::RawManifest::from_bytes(path, new.as_bytes().to_vec())
        .map_err(|e| refuse(format!("the edited text would not parse ({e})")))?;
    let same_rest = before.org == after.org
        && before
            .extends
            .iter()
            .map(|e| &e.value)
            .eq(after.extends.iter().map(|e| &e.value))
        && before
            .everyday
            .as_ref()
            .map(|v| v.iter().map(|e| e.value.clone()).collect::<Vec<_>>())
            == after
                .everyday
                .as_ref()
                .map(|v| v.iter().map(|e| e.value.clone()).collect::<Vec<_>>());
    let (b, a) = (flatten(&before), flatten(&after));
    if !same_rest || b.symmetric_difference(&a).count() != 1 {
        return Err(refuse("the edit would change more than the one key".into()));
    }
    Ok(())
}

fn find_section(lines: &[&str], env: &str) -> Option<usize> {
    let name = format!("env.{env}");
    lines.iter().position(|l| {
        let unquoted = l
            .strip_prefix(&name)
            .or_else(|| l.strip_prefix(&format!("'{name}'")))
            .or_else(|| l.strip_prefix(&format!("\"{name}\"")));
        unquoted.is_some_and(|rest| rest.trim_start().starts_with(':'))
    })
}

fn after_colon(line: &str) -> &str {
    &line[line.find(':').map(|i| i + 1).unwrap_or(line.len())..]
}

/// Splits off a trailing `# comment` (outside quotes).
fn split_comment(s: &str) -> (&str, Option<&str>) {
    let mut quote = None;
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || bytes[i - 1].is_ascii_whitespace() => {
                return (&s[..i], Some(&s[i..]))
            }
            _ => {}
        }
    }
    (s, None)
}

fn flow_items(inline: &str) -> Option<Vec<String>> {
    let inner = inline.strip_prefix('[')?.strip_suffix(']')?;
    if inner.contains(['{', '[']) {
        return None; // nested flow content: leave the file alone
    }
    Some(
        inner
            .split(',')
            .map(|s| s.trim().trim_matches(['\'', '"']).to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

fn is_top_level(line: &str) -> bool {
    let t = line.trim_end_matches(['\r', '\n']);
    !t.is_empty() && !t.starts_with([' ', '\t', '#']) && !t.starts_with("- ") && t != "-"
}

fn section_end(lines: &[&str], head: usize) -> usize {
    (head + 1..lines.len())
        .find(|&i| is_top_level(lines[i]))
        .unwrap_or(lines.len())
}

/// The items of a block list: (first line, one past last line, key name).
fn block_items(lines: &[&str], head: usize, end: usize) -> Vec<(usize, usize, String)> {
    let mut items: Vec<(usize, usize, String)> = Vec::new();
    let mut item_indent = None;
    for (i, raw) in lines.iter().enumerate().take(end).skip(head + 1) {
        let line = raw.trim_end_matches(['\r', '\n']);
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed
            .strip_prefix('-')
            .filter(|r| r.is_empty() || r.starts_with([' ', '\t']))
        {
            if item_indent.is_none_or(|ii| indent <= ii) {
                item_indent = Some(indent);
                let (body, _) = split_comment(rest);
                let body = body.trim();
                let name = body
                    .strip_prefix("key:")
                    .map(str::trim)
                    .unwrap_or_else(|| body.split(':').next().unwrap_or(body).trim())
                    .trim_matches(['\'', '"'])
                    .to_string();
                items.push((i, i + 1, name));
                continue;
            }
        }
        // a continuation line (e.g. `is-optional-if-has:` of an object entry)
        if let Some(last) = items.last_mut() {
            if item_indent.is_some_and(|ii| indent > ii) {
                if trimmed.starts_with("key:") && last.2.is_empty() {
                    last.2 = trimmed["key:".len()..]
                        .trim()
                        .trim_matches(['\'', '"'])
                        .to_string();
                }
                last.1 = i + 1;
            }
        }
    }
    items
}

fn replace_lines(lines: &[&str], from: usize, to: usize, with: &[String]) -> String {
    let mut out = String::new();
    for l in &lines[..from] {
        out.push_str(l);
    }
    for l in with {
        out.push_str(l);
    }
    for l in &lines[to..] {
        out.push_str(l);
    }
    out
}
