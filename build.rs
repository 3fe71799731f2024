//! Builds the admin console (admin-ui/, Vite + TypeScript) into OUT_DIR/console, which
//! rust-embed puts into the binary. `MAILSTEAD_SKIP_UI_BUILD=1` embeds a placeholder page
//! instead (for quick Rust-only builds); a normal build always builds the console.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("console");
    let ui =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("admin-ui");
    println!("cargo:rerun-if-env-changed=MAILSTEAD_SKIP_UI_BUILD");
    println!("cargo:rerun-if-env-changed=MAILSTEAD_UI_DIST");
    for p in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "public",
    ] {
        println!("cargo:rerun-if-changed=admin-ui/{p}");
    }
    std::fs::create_dir_all(&out).expect("create OUT_DIR/console");
    let skip = std::env::var("MAILSTEAD_SKIP_UI_BUILD").is_ok_and(|v| v == "1");
    if skip || !ui.join("package.json").exists() {
        placeholder(&out);
        return;
    }
    // A console already built elsewhere (the Docker image builds it in a Node stage).
    if let Some(dist) = std::env::var_os("MAILSTEAD_UI_DIST").map(PathBuf::from) {
        copy_dir(&dist, &out);
        if !out.join("index.html").exists() {
            panic!("MAILSTEAD_UI_DIST={} has no index.html", dist.display());
        }
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if !ui.join("node_modules/.package-lock.json").exists() {
        run(
            Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&ui),
            "npm ci",
        );
    }
    run(
        Command::new(npm)
            .args(["run", "build", "--", "--outDir"])
            .arg(&out)
            .arg("--emptyOutDir")
            .current_dir(&ui),
        "npm run build",
    );
    if !out.join("index.html").exists() {
        panic!(
            "the console build produced no index.html in {}",
            out.display()
        );
    }
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "{what} in admin-ui failed ({s}); fix the console build, or set MAILSTEAD_SKIP_UI_BUILD=1 for a build without the console"
        ),
        Err(e) => panic!(
            "cannot run {what} for the admin console ({e}); install Node.js 20+ and npm, or set MAILSTEAD_SKIP_UI_BUILD=1"
        ),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create console dir");
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()))
    {
        let entry = entry.expect("read console dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy console file");
        }
    }
}

fn placeholder(out: &Path) {
    std::fs::write(
        out.join("index.html"),
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Mailstead</title><body><h1>Mailstead</h1><p>This build has no console (MAILSTEAD_SKIP_UI_BUILD=1). The API is at /api/v1.</p></body></html>\n",
    )
    .expect("write placeholder console");
}
