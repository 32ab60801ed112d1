//! supervisord's `%(name)s` expansion: `%(here)s` (the config file's directory),
//! `%(program_name)s`, `%(group_name)s`, `%(process_num)d` (with a width: `%(process_num)02d`)
//! and `%(ENV_NAME)s` (the daemon's environment). `%%` is a literal `%`.
//!
//! Expansion happens twice: at load time for everything but `process_num`, which is kept
//! verbatim, then per instance ([`expand_instance`]).

/// What a variable name resolves to.
pub enum Lookup {
    /// Substitute this text.
    Value(String),
    /// Keep `%(…)…` verbatim for a later pass.
    Keep,
    /// No such variable.
    Undefined,
}

/// Why a value could not be expanded. It names the reference, never the rest of the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// No such variable; the reference as written (`%(ENV_HOMEX)s`).
    #[error("undefined variable {0}")]
    Undefined(String),
    /// `%(` with no `)`.
    #[error("unclosed '%(': write %% for a literal %")]
    Unclosed,
    /// `%(name)` not followed by a width and `s` or `d`; the reference so far (`%(here)`).
    #[error("{0} needs a format such as s or d")]
    NoFormat(String),
}

/// Expands every `%(name)FMT` in `s`, FMT being optional digits then `s` or `d`.
///
/// # Errors
/// An undefined variable ("undefined variable %(ENV_HOMEX)s") or a malformed reference.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Lookup) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("%%") {
            out.push('%');
            rest = after;
            continue;
        }
        let Some(body) = tail.strip_prefix("%(") else {
            out.push('%');
            rest = &tail[1..];
            continue;
        };
        let close = body.find(')').ok_or(ExpandError::Unclosed)?;
        let name = &body[..close];
        let spec_len = body[close + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| ExpandError::NoFormat(format!("%({name})")))?;
        let width = &body[close + 1..close + 1 + spec_len];
        let conv = body[close + 1 + spec_len..].chars().next().unwrap_or(' ');
        if conv != 's' && conv != 'd' {
            return Err(ExpandError::NoFormat(format!("%({name})")));
        }
        let whole = &tail[..2 + close + 1 + spec_len + 1];
        match lookup(name) {
            Lookup::Value(v) => {
                let w: usize = width.parse().unwrap_or(0);
                if width.starts_with('0') && conv == 'd' {
                    out.push_str(&format!("{v:0>w$}"));
                } else {
                    out.push_str(&format!("{v:>w$}"));
                }
            }
            Lookup::Keep => out.push_str(whole),
            Lookup::Undefined => return Err(ExpandError::Undefined(format!("%({name}){width}{conv}"))),
        }
        rest = &tail[whole.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The load-time pass: everything but `process_num`.
///
/// # Errors
/// As [`expand`].
pub fn expand_load(s: &str, here: &str, program: Option<&str>) -> Result<String, ExpandError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    expand(s, &|name| match name {
        "here" => Lookup::Value(here.to_owned()),
        "program_name" | "group_name" => program.map_or(Lookup::Undefined, |p| Lookup::Value(p.to_owned())),
        "process_num" if program.is_some() => Lookup::Keep,
        n => match n.strip_prefix("ENV_").and_then(std::env::var_os) {
            Some(v) => Lookup::Value(v.to_string_lossy().into_owned()),
            None => Lookup::Undefined,
        },
    })
}

/// The per-instance pass: `process_num` only (everything else was expanded at load).
pub fn expand_instance(s: &str, instance: u32) -> String {
    if !s.contains("%(process_num)") {
        return s.to_owned();
    }
    expand(s, &|name| match name {
        "process_num" => Lookup::Value(instance.to_string()),
        _ => Lookup::Keep,
    })
    .unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_supervisord_variables() {
        std::env::set_var("TM_EXPAND_TEST", "v");
        assert_eq!(
            expand_load("%(here)s/log/%(program_name)s-%(ENV_TM_EXPAND_TEST)s.log", "/etc/tm", Some("web")).unwrap(),
            "/etc/tm/log/web-v.log"
        );
        let kept = expand_load("web-%(process_num)02d", "/", Some("web")).unwrap();
        assert_eq!(kept, "web-%(process_num)02d");
        assert_eq!(expand_instance(&kept, 3), "web-03");
        assert_eq!(expand_load("100%% sure", "/", None).unwrap(), "100% sure");
        assert_eq!(
            expand_load("%(ENV_NOPE_TM_X)s", "/", None).unwrap_err().to_string(),
            "undefined variable %(ENV_NOPE_TM_X)s"
        );
        assert!(expand_load("%(here", "/", None).is_err());
        assert!(expand_load("%(process_num)d", "/", None).is_err(), "no process_num outside programs");
    }
}
