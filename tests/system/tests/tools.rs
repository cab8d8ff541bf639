//! The tool installer (`scripts/tools.sh`) as a user's machine meets it: every pinned
//! requirements file resolves on the oldest Python the README supports, and a failed
//! install fails loudly, leaves nothing marked installed, and is retried by the next run.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `scripts/tools.sh ARGS` from `root` with its cache in `cache`.
fn tools_sh(root: &Path, cache: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new("bash")
        .arg(root.join("scripts/tools.sh"))
        .args(args)
        .env("CAREERS_TOOLS_CACHE", cache)
        .output()?)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every `.installed` marker under `dir`.
fn markers(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !dir.exists() {
        return Ok(found);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(markers(&path)?);
        } else if path.file_name().is_some_and(|name| name == ".installed") {
            found.push(path);
        }
    }
    Ok(found)
}

#[test]
fn every_requirements_file_resolves_on_the_oldest_supported_python() -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let output = tools_sh(&repo(), cache.path(), &["check-pins"])?;
    let log = stderr(&output);
    assert!(output.status.success(), "check-pins failed:\n{log}");
    let files = fs::read_dir(repo().join("tools/requirements"))?.count();
    assert_eq!(
        log.matches("pins resolve on Python 3.11.2").count(),
        files,
        "every requirements file is checked:\n{log}"
    );
    Ok(())
}

#[test]
fn a_broken_install_fails_loudly_leaves_no_marker_and_is_retried() -> anyhow::Result<()> {
    // A copy of the installer and its pins, so that breaking one touches no real checkout.
    let root = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    fs::create_dir_all(root.path().join("scripts"))?;
    fs::create_dir_all(root.path().join("tools/requirements"))?;
    fs::copy(
        repo().join("scripts/tools.sh"),
        root.path().join("scripts/tools.sh"),
    )?;
    for entry in fs::read_dir(repo().join("tools/requirements"))? {
        let entry = entry?;
        fs::copy(
            entry.path(),
            root.path()
                .join("tools/requirements")
                .join(entry.file_name()),
        )?;
    }
    let requirements = root.path().join("tools/requirements/schemathesis.txt");
    let good = fs::read_to_string(&requirements)?;
    let pin = good
        .lines()
        .find(|line| line.starts_with("schemathesis=="))
        .ok_or_else(|| anyhow::anyhow!("schemathesis.txt pins no schemathesis"))?;
    fs::write(
        &requirements,
        good.replace(pin, "schemathesis==999.0.0.dev0"),
    )?;

    let broken = tools_sh(root.path(), cache.path(), &["schemathesis"])?;
    let log = stderr(&broken);
    assert!(
        !broken.status.success(),
        "a broken install must fail:\n{log}"
    );
    assert!(
        log.contains("FAILED to install schemathesis")
            && log.contains("pip install -r tools/requirements/schemathesis.txt"),
        "the failure names the tool and the step:\n{log}"
    );
    assert!(
        log.contains("999.0.0.dev0"),
        "pip's own reason is shown:\n{log}"
    );
    assert_eq!(markers(cache.path())?, Vec::<PathBuf>::new(), "no marker");
    assert_eq!(
        fs::read_dir(cache.path())?.count(),
        0,
        "the half-made venv is removed"
    );
    assert!(
        !root.path().join(".tools/bin/schemathesis").exists(),
        "nothing is linked"
    );

    fs::write(&requirements, &good)?;
    let fixed = tools_sh(root.path(), cache.path(), &["schemathesis"])?;
    assert!(
        fixed.status.success(),
        "the next run installs it:\n{}",
        stderr(&fixed)
    );
    assert_eq!(markers(cache.path())?.len(), 1);
    let version = Command::new(root.path().join(".tools/bin/schemathesis"))
        .arg("--version")
        .output()?;
    assert!(version.status.success(), "the installed tool runs");
    let pinned = pin.trim_start_matches("schemathesis==");
    assert!(
        String::from_utf8_lossy(&version.stdout).contains(pinned),
        "the pinned version runs"
    );
    Ok(())
}
