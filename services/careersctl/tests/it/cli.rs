//! The command line itself: refusals that list the choices, help with examples at every
//! level, `--version` with the commit, and completion scripts a shell accepts.

use std::process::{Command, Output};

fn careersctl(args: &[&str]) -> anyhow::Result<Output> {
    let data = tempfile::tempdir()?;
    Ok(Command::new(env!("CARGO_BIN_EXE_careersctl"))
        .env_clear()
        .current_dir(data.path())
        .args(args)
        .output()?)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn token_refuses_an_unknown_role_and_a_missing_organisation_listing_the_choices()
-> anyhow::Result<()> {
    let bogus = careersctl(&["token", "--role", "bogus"])?;
    assert!(!bogus.status.success());
    assert!(bogus.stdout.is_empty());
    let message = stderr(&bogus);
    for role in careers_gateway::access::ROLES {
        assert!(message.contains(role), "{role} is not listed: {message}");
    }

    let adviser = careersctl(&["token", "--role", "adviser"])?;
    assert!(!adviser.status.success());
    assert!(adviser.stdout.is_empty());
    let message = stderr(&adviser);
    assert!(
        message.contains("--role adviser needs --org")
            && message.contains("roles that need --org: adviser, supervisor, school_contact"),
        "{message}"
    );
    let publisher = careersctl(&["token", "--role", "ssc_publisher"])?;
    assert!(stderr(&publisher).contains("--role ssc_publisher needs --ssc"));

    let good = careersctl(&["token", "--role", "adviser", "--org", "college-1"])?;
    assert!(good.status.success(), "{}", stderr(&good));
    let token = String::from_utf8(good.stdout)?;
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
    Ok(())
}

/// Walks the tree as a user does, through the `Commands:` section of each `--help`.
#[test]
fn every_help_page_shows_an_example() -> anyhow::Result<()> {
    let mut pending = vec![Vec::<String>::new()];
    let mut pages = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let output = careersctl(&args)?;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let help = String::from_utf8(output.stdout)?;
        assert!(
            help.split_once("Example")
                .is_some_and(|(_, example)| example.contains("careersctl ")),
            "`careersctl {}` shows no example:\n{help}",
            args.join(" ")
        );
        pages += 1;
        if let Some((_, commands)) = help.split_once("Commands:\n") {
            for line in commands.lines().take_while(|line| line.starts_with("  ")) {
                let name = line.split_whitespace().next().unwrap_or_default();
                if name != "help" {
                    let mut child = path.clone();
                    child.push(name.to_owned());
                    pending.push(child);
                }
            }
        }
    }
    assert!(pages >= 19, "only {pages} help pages");
    Ok(())
}

#[test]
fn version_names_the_commit() -> anyhow::Result<()> {
    let output = careersctl(&["--version"])?;
    let printed = String::from_utf8(output.stdout)?;
    let commit = printed
        .trim()
        .strip_prefix(concat!(
            "careersctl ",
            env!("CARGO_PKG_VERSION"),
            " (commit "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_default()
        .to_owned();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{printed}"
    );
    Ok(())
}

#[test]
fn completion_scripts_name_the_commands_and_bash_accepts_its_own() -> anyhow::Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let output = careersctl(&["completions", shell])?;
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = String::from_utf8(output.stdout)?;
        for command in ["lmi", "push", "dry-run", "allow-rejected", "token", "dlq"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("careersctl.bash");
            std::fs::write(&path, &script)?;
            let checked = Command::new("bash").arg("-n").arg(&path).output()?;
            assert!(checked.status.success(), "{}", stderr(&checked));
        }
    }
    Ok(())
}
