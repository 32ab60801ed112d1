//! Reading a config file: the file checks of DESIGN §1 rule 5, the YAML parse (`yaml.rs`), the
//! structural read (`raw.rs`) and validation (`validate.rs`), for the main file and the files it
//! includes. Every error comes out of `diag.rs`, located by the parser's marks.
//!
//! taskmasterd ([`load`]) and taskmasterctl ([`load_ctl`]) read a file through the same
//! [`parse_file`], so the same broken file gives both the same error.

use super::diag::{ConfigError, Diag, Located};
use super::model::{Config, CtlConfig, SocketConfig};
use super::raw::RawFile;
use super::read::{self, Scope};
use super::validate::{self, Context, Source};
use super::yaml;
use std::path::{Path, PathBuf};

fn absolute_path(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Largest config or include file read, in bytes (16 MiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Most errors printed for one file; the rest are counted on one more line. A file that is not a
/// config at all (an include glob that catches a data file) must not give one line per line.
const MAX_ERRORS_PER_FILE: usize = 50;

/// Reads a config or include file. A symlink is followed (a managed config is often one), but
/// what is checked is the file actually opened (its `fstat`): a regular file, at most
/// [`MAX_FILE_BYTES`], and with `trusted_uid` set (taskmasterd as root, DESIGN §1 rule 5) owned
/// by root or that uid and writable by its owner only. It is opened non-blocking, so a FIFO
/// planted where a file was expected is refused instead of hanging the daemon.
///
/// # Errors
/// `file: No such file or directory` (the errno's words), `file: not a regular file`, too
/// large, not valid UTF-8, or refused for its owner or mode.
fn read(path: &Path, trusted_uid: Option<u32>) -> Result<(PathBuf, String), ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let file = absolute_path(path);
    let fail = |message: String| ConfigError::whole(&file, message);
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(&file);
    let f = opened.map_err(|e| ConfigError::io(&file, &e))?;
    let meta = f.metadata().map_err(|e| ConfigError::io(&file, &e))?;
    if !meta.file_type().is_file() {
        return Err(fail("not a regular file".into()));
    }
    if let Some(trusted) = trusted_uid {
        let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
        if owner != 0 && owner != trusted {
            let name = nix::unistd::User::from_uid(owner.into())
                .ok()
                .flatten()
                .map(|u| format!(" ({})", u.name))
                .unwrap_or_default();
            let who = if trusted == 0 { "root".to_owned() } else { format!("root or uid {trusted}") };
            return Err(fail(format!(
                "refusing a config file owned by uid {owner}{name}, not by {who}; run chown root on it"
            )));
        }
        if mode & 0o022 != 0 {
            return Err(fail(format!(
                "refusing a config file writable by group or others (mode {mode:04o}); run chmod go-w on it"
            )));
        }
    }
    let too_large = || fail(format!("larger than {} MiB, the most a config file may be", MAX_FILE_BYTES >> 20));
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    match f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
        Ok(n) if n as u64 > MAX_FILE_BYTES => Err(too_large()),
        Ok(_) => match String::from_utf8(bytes) {
            Ok(text) => Ok((file, text)),
            Err(_) => Err(fail("not UTF-8 text: a config file is YAML text".into())),
        },
        Err(e) => Err(ConfigError::io(&file, &e)),
    }
}

/// Parses one file's text and reads what `scope` needs of it, every problem recorded in the
/// returned source's diagnostics: a syntax error at the parser's mark, then (when the text is
/// YAML) each structural problem at its key. The one parse of taskmasterd and taskmasterctl.
pub fn parse_file(file: &Path, text: &str, scope: Scope) -> Source {
    let mut diag = Diag::new(file);
    let raw = match yaml::parse(text) {
        Ok(root) => read::read(root.as_ref(), scope, &mut diag),
        Err(e) => {
            diag.error(e.pos, e.message);
            RawFile::default()
        }
    };
    Source { raw, diag }
}

/// Loads and validates the daemon's config file.
///
/// # Errors
/// The file cannot be read, is not YAML of the right shape, or fails validation; every error
/// names file:line:col.
pub fn load(path: &Path, ctx: &Context) -> Result<Config, ConfigError> {
    let (file, text) = read(path, ctx.trusted_uid)?;
    load_str(&file, &text, ctx)
}

/// Validates config text as if read from `file` (absolute), with the files it includes.
///
/// # Errors
/// As [`load`].
pub fn load_str(file: &Path, text: &str, ctx: &Context) -> Result<Config, ConfigError> {
    let mut main = parse_file(file, text, Scope::Daemon);
    let mut unreadable: Vec<Located> = Vec::new();
    let mut sources = Vec::new();
    let here = file.parent().unwrap_or(Path::new("/"));
    let patterns = main.raw.include.as_ref().map(|i| i.value.clone()).unwrap_or_default();
    for (i, pattern) in patterns.into_iter().enumerate() {
        let full = if Path::new(&pattern.value).is_absolute() {
            pattern.value.clone()
        } else {
            here.join(&pattern.value).display().to_string()
        };
        let paths = match glob::glob(&full) {
            Ok(p) => p,
            Err(e) => {
                let what = main.diag.named("bad glob", &pattern.value);
                main.diag.error(pattern.pos, format!("include[{i}]: {what}: {}", e.msg));
                continue;
            }
        };
        let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p != file).collect();
        matched.sort();
        for path in matched {
            match read(&path, ctx.trusted_uid) {
                Ok((f, t)) => sources.push(parse_file(&f, &t, Scope::Daemon)),
                Err(e) => unreadable.extend(e.errors),
            }
        }
    }
    sources.insert(0, main);
    match validate::validate(sources, ctx) {
        Ok(c) if unreadable.is_empty() => Ok(c),
        Ok(_) => Err(capped(unreadable)),
        Err(e) => {
            unreadable.extend(e.errors);
            Err(capped(unreadable))
        }
    }
}

/// Every error in file order, at most [`MAX_ERRORS_PER_FILE`] per file and a line counting the
/// rest.
fn capped(errors: Vec<Located>) -> ConfigError {
    let sorted = ConfigError::sorted(errors).errors;
    let mut out: Vec<Located> = Vec::with_capacity(sorted.len().min(4 * MAX_ERRORS_PER_FILE));
    let mut i = 0;
    while i < sorted.len() {
        let file = &sorted[i].file;
        let n = sorted[i..].iter().take_while(|e| &e.file == file).count();
        out.extend(sorted[i..i + n.min(MAX_ERRORS_PER_FILE)].iter().cloned());
        if n > MAX_ERRORS_PER_FILE {
            let more = n - MAX_ERRORS_PER_FILE;
            let message = format!("{more} more errors not shown: is this a taskmaster config file?");
            out.extend(ConfigError::whole(file, message).errors);
        }
        i += n;
    }
    ConfigError { errors: out }
}

/// What taskmasterctl needs from a config file: the socket and ctl sections, without checking
/// anything else in the file.
///
/// # Errors
/// The file cannot be read, is not YAML (the error taskmasterd gives for it), or its `socket` or
/// `ctl` section is not of the right shape.
pub fn load_ctl(path: &Path) -> Result<(SocketConfig, CtlConfig), ConfigError> {
    let (file, text) = read(path, None)?;
    let Source { raw, diag } = parse_file(&file, &text, Scope::Ctl);
    if !diag.is_empty() {
        return Err(capped(diag.into_errors()));
    }
    let here = file.parent().unwrap_or(Path::new("/"));
    Ok((
        validate::socket_config(raw.socket.map(|s| s.value), here, None),
        validate::ctl_config(raw.ctl.map(|s| s.value), here),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context { is_root: true, current_user: Some("root".into()), check_users: false, trusted_uid: None }
    }

    fn check(text: &str) -> Result<Config, String> {
        load_str(Path::new("/etc/t.yaml"), text, &ctx()).map_err(|e| e.to_string())
    }

    #[test]
    fn aliases_scalars_and_octal() {
        let c = check(
            "programs:\n  web:\n    cmd: \"/bin/echo 'a b' c\"\n    umask: 022\n    exitcodes: 2\n    starttime: 5\n    stoptime: 3\n    env:\n      ANSWER: 42\n      ON: true\n    stdout: NONE\n    stderr: log/err.log\n    workingdir: /tmp\n    stopsignal: USR1\n    stdout_logfile_maxbytes: 1KB\n",
        )
        .unwrap();
        let p = &c.programs[0];
        assert_eq!(p.command, ["/bin/echo", "a b", "c"]);
        assert_eq!(p.umask, Some(0o22));
        assert_eq!(p.exitcodes, [2]);
        assert_eq!((p.startsecs, p.stopwaitsecs), (5, 3));
        assert_eq!(p.environment, [("ANSWER".into(), "42".into()), ("ON".into(), "true".into())]);
        assert_eq!(p.stdout.target, super::super::model::LogTarget::None);
        assert_eq!(p.stderr.target, super::super::model::LogTarget::File("/etc/log/err.log".into()));
        assert_eq!(p.stopsignal, 10);
        assert_eq!(p.stdout.maxbytes, 1024);
    }

    #[test]
    fn unknown_key_is_located_with_a_hint() {
        let e = check("programs:\n  web:\n    command: x\n    autorestar: true\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:4:5: unknown key 'autorestar'"), "{e}");
        assert!(e.contains("did you mean 'autorestart'?"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = check("programs:\n  web:\n    command: x\n    stopsignal: NOPE\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:4:5: programs.web.stopsignal:"), "{e}");
        assert!(e.contains("unknown signal 'NOPE'"), "{e}");
        let e = check("programs:\n  web:\n    command: x\n    umask: 099\n").unwrap_err();
        assert_eq!(e, "/etc/t.yaml:4:5: programs.web.umask: expected an octal mode such as 022, got \"099\"");
    }

    #[test]
    fn malformed_yaml_reports_line_and_column() {
        let e = check("programs:\n  web:\n    command: [unclosed\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:"), "{e}");
        assert!(!e.starts_with("/etc/t.yaml:0:"), "{e}");
    }

    #[test]
    fn semantic_errors_are_located_at_their_key() {
        let e = check("programs:\n  web:\n    numprocs: 0\n    command: x\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:3:5: programs.web.numprocs"), "{e}");
        let e = check("programs:\n  web:\n    autostart: true\n").unwrap_err();
        assert!(e.contains("missing key 'command'"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = check("programs:\n  w:\n    command: x\n").unwrap();
        let p = &c.programs[0];
        assert_eq!((p.numprocs, p.priority, p.startsecs, p.startretries, p.stopwaitsecs), (1, 999, 1, 3, 10));
        assert_eq!(p.exitcodes, [0]);
        assert_eq!(c.server.logfile, Path::new("/etc/taskmasterd.log"));
        assert_eq!(c.server.childlogdir, Path::new("/etc"));
        assert_eq!(c.socket.chmod, 0o700);
    }

    #[test]
    fn cleanupgroup_defaults_to_true_and_takes_a_boolean() {
        let c = check("programs:\n  on:\n    command: x\n  off:\n    command: x\n    cleanupgroup: false\n").unwrap();
        let by_name = |n: &str| c.programs.iter().find(|p| p.name == n).unwrap().cleanupgroup;
        assert!(by_name("on"), "the default ends a dead program's leftovers");
        assert!(!by_name("off"));
        let e = check("programs:\n  web:\n    command: x\n    cleanupgroup: sometimes\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:4:5: programs.web.cleanupgroup"), "{e}");
        let e = check("programs:\n  web:\n    command: x\n    cleanupgrup: false\n").unwrap_err();
        assert!(e.contains("did you mean 'cleanupgroup'?"), "{e}");
    }

    #[test]
    fn every_error_is_reported_not_only_the_first() {
        let e = check("programs:\n  a:\n    command: x\n    autorestar: true\n  b:\n    command: y\n    numprocs: many\n  c:\n    command: z\n    stopsignal: NOPE\n").unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(lines[0].starts_with("/etc/t.yaml:4:5: unknown key 'autorestar'"), "{e}");
        assert!(lines[1].starts_with("/etc/t.yaml:7:"), "{e}");
        assert!(lines[2].starts_with("/etc/t.yaml:10:5: programs.c.stopsignal"), "{e}");
    }

    #[test]
    fn includes_join_programs_and_refuse_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("conf.d/b.yaml"), "programs:\n  b:\n    command: y %(here)s\n").unwrap();
        std::fs::write(dir.path().join("conf.d/a.yaml"), "programs:\n  a2:\n    command: x\n").unwrap();
        let main = dir.path().join("main.yaml");
        let c = load_str(&main, "include: [\"conf.d/*.yaml\"]\nprograms:\n  a:\n    command: x\n", &ctx()).unwrap();
        let names: Vec<&str> = c.programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "a2", "b"]);
        assert_eq!(c.programs[2].command, ["y".to_owned(), dir.path().join("conf.d").display().to_string()]);
        std::fs::write(dir.path().join("conf.d/c.yaml"), "programs:\n  a:\n    command: dup\n").unwrap();
        let e = load_str(&main, "include: [\"conf.d/*.yaml\"]\nprograms:\n  a:\n    command: x\n", &ctx())
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml:2:3: program 'a' is defined twice: first at") && e.contains("main.yaml:3:3"), "{e}");
    }

    #[test]
    fn undefined_variables_are_named() {
        let e = check("programs:\n  a:\n    command: x %(ENV_NO_SUCH_TM_VAR)s\n").unwrap_err();
        assert_eq!(e, "/etc/t.yaml:3:5: programs.a.command: undefined variable %(ENV_NO_SUCH_TM_VAR)s");
    }

    #[test]
    fn capabilities_are_checked() {
        let e = check("programs:\n  a:\n    command: x\n    capabilities: [CAP_NOPE]\n    user: nobody\n").unwrap_err();
        assert!(e.contains("unknown capability 'CAP_NOPE'"), "{e}");
        let e = check("programs:\n  a:\n    command: x\n    capabilities: [net_bind_service]\n").unwrap_err();
        assert!(e.contains("give the program a non-root `user`"), "{e}");
        let c =
            check("programs:\n  a:\n    command: x\n    capabilities: [net_bind_service]\n    user: nobody\n").unwrap();
        assert_eq!(c.programs[0].capabilities, ["CAP_NET_BIND_SERVICE"]);
    }

    #[test]
    fn non_root_cannot_name_another_user() {
        let ctx = Context { is_root: false, current_user: Some("alice".into()), check_users: false, trusted_uid: None };
        let e = load_str(Path::new("/t.yaml"), "programs:\n  w:\n    command: x\n    user: bob\n", &ctx).unwrap_err();
        assert!(e.to_string().contains("programs.w.user: 'bob' needs taskmasterd to start as root"), "{e}");
    }

    #[test]
    fn errors_quote_nothing_of_a_file_that_is_not_a_config() {
        for text in [
            "root:$6$SECRETsalt$SECREThash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
            "SECRET_TOKEN=hunter2SECRET\nOTHER=SECRETvalue\n",
            "SECRETKEY: SECRETvalue\n",
            "- SECRETitem\n",
            "\"SECRET quoted\"\n",
            "\u{1}\u{2}SECRETbinary\u{7f}",
            "key: [SECRETunclosed\n",
            "@SECRETat\n",
            "API_TOKEN=SECRET1\npassword: SECRET2\n",
            // A config section beside a key that is no section: not a config, nothing quoted.
            "programs:\n  a:\n    command: x\n    numprocs: SECRETnum\n    user: SECRETuser\nSECRET: 1\n",
            "programs:\n  a:\n    command: \"SECRET 'x\"\n    SECRETkey: 1\nother: 2\n",
        ] {
            let e = check(text).unwrap_err();
            assert!(!e.contains("SECRET"), "{text:?} gave {e}");
            assert!(e.lines().all(|l| l.starts_with("/etc/t.yaml:") && !l.starts_with("/etc/t.yaml:0:")), "{e}");
        }
        // A near miss of a section is still named, with its hint.
        let e = check("program:\n  a:\n    command: x\n").unwrap_err();
        assert_eq!(e, "/etc/t.yaml:1:1: unknown key 'program' (did you mean 'programs'?)");
    }

    #[test]
    fn a_config_quotes_only_short_scalars_escaped() {
        // A document whose top-level keys are all sections is a config: a short scalar may be
        // quoted, escaped; a list, a mapping or a long string is described by its kind.
        let e = check("programs:\n  a:\n    command: x\n    numprocs: \"t\\u001bwo\"\n").unwrap_err();
        assert_eq!(e, "/etc/t.yaml:4:5: programs.a.numprocs: expected a whole number, got \"t\\u{1b}wo\"");
        let e = check("programs:\n  a:\n    command: x\n    autorestart: [secret]\n").unwrap_err();
        assert_eq!(e, "/etc/t.yaml:4:5: programs.a.autorestart: expected always, never or unexpected, got a list");
        let long = "s".repeat(41);
        let e = check(&format!("programs:\n  a:\n    command: x\n    stopsignal: {long}\n")).unwrap_err();
        assert_eq!(e, "/etc/t.yaml:4:5: programs.a.stopsignal: unknown signal");
        let e = check("programs:\n  \"a: b\":\n    command: x\n").unwrap_err();
        assert_eq!(
            e,
            "/etc/t.yaml:2:3: programs: invalid program name 'a: b': use 1 to 64 letters, digits, '_', '.' or '-' ('all' is reserved)"
        );
        let e = check("programs: oops\n").unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:1:1: programs: expected a mapping") && e.ends_with("got \"oops\""), "{e}");
    }

    #[test]
    fn an_error_is_one_short_line_whatever_it_quotes() {
        let e = check("programs:\n  a:\n    command: \"x\\n\\u001b]52;c;SECRET\\u0007 'unbalanced\"\n").unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!e.contains('\u{1b}') && !e.contains('\u{7}') && e.contains("\\u{1b}"), "{e}");
        // A long value is not quoted at all.
        let e = check(&format!("programs:\n  a:\n    command: \"'{}\"\n", "y".repeat(100_000))).unwrap_err();
        assert!(e.len() < 200 && !e.contains("yyy") && e.lines().count() == 1, "{e}");
    }

    #[test]
    fn config_files_are_checked_on_the_file_opened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let strict = Context { trusted_uid: Some(me), ..ctx() };
        let target = dir.path().join("managed.yaml");
        std::fs::write(&target, "programs:\n  a:\n    command: x\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A symlink is followed: the file it leads to is what is checked.
        let link = dir.path().join("taskmaster.yaml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(load(&link, &strict).is_ok());
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = load(&link, &strict).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: refusing a config file writable by group or others (mode 0664); run chmod go-w on it",
                link.display()
            )
        );
        assert!(load(&link, &ctx()).is_ok(), "not checked when not root");
        // An include is checked alike, and refusing it refuses the config.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let main = dir.path().join("main.yaml");
        std::fs::write(&main, "include: [managed.yaml]\n").unwrap();
        assert_eq!(load(&main, &strict).unwrap().programs.len(), 1);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o606)).unwrap();
        let e = load(&main, &strict).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: refusing", target.display())) && e.contains("(mode 0606)"), "{e}");
        // Another owner: as root, chown the file away; as a user, trust another uid.
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let strict = if me == 0 {
            std::os::unix::fs::chown(&target, Some(65534), None).unwrap();
            strict
        } else {
            Context { trusted_uid: Some(me + 1), ..ctx() }
        };
        let e = load(&link, &strict).unwrap_err().to_string();
        assert!(e.contains("refusing a config file owned by uid ") && e.ends_with("run chown root on it"), "{e}");
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = load(&fifo, &ctx()).unwrap_err().to_string();
        assert_eq!(e, format!("{}: not a regular file", fifo.display()));
        let e = load(dir.path(), &ctx()).unwrap_err().to_string();
        assert!(e.ends_with(": not a regular file"), "{e}");
        let e = load(&dir.path().join("nope.yaml"), &ctx()).unwrap_err().to_string();
        assert_eq!(e, format!("{}: No such file or directory", dir.path().join("nope.yaml").display()));
    }

    #[test]
    fn a_program_too_large_for_the_link_is_located() {
        let text = format!("programs:\n  small:\n    command: x\n  big:\n    command: x {}\n", "y".repeat(1_100_000));
        let e = check(&text).unwrap_err();
        assert!(e.starts_with("/etc/t.yaml:4:3: programs.big is too large to send to the supervisor ("), "{e}");
        assert!(e.ends_with(" bytes encoded, limit 1048576)") && e.lines().count() == 1, "{e}");
        // The environment stays with the spawner, so it does not count.
        let env = format!("programs:\n  a:\n    command: x\n    environment:\n      BIG: {}\n", "y".repeat(1_100_000));
        assert!(check(&env).is_ok());
    }
}
