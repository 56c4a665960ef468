//! Hashing throughput of airlock's own code paths, for `bench/hash.sh`.
//!
//! - `file PATH`: sha256 of one file through `airlock_attest::hash_reader` (the digest code
//!   every blob, input and output goes through);
//! - `tree DIR`: airlock's source-tree digest: `source_archive::pack_dir`, the canonical tar
//!   of the tree, hashed while written (to a temporary file on the same disk);
//! - `files DIR`: sha256 of every regular file of the tree separately (the same work as
//!   `find DIR -type f -exec sha256sum {} +`).
//!
//! Prints one line: `<mode> <digest> <bytes> <files> <seconds> <MiB/s>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            walk(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, path) = match args.as_slice() {
        [_, m, p] => (m.as_str(), PathBuf::from(p)),
        _ => {
            eprintln!("usage: hash_bench file PATH | tree DIR | files DIR");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let (digest, bytes, files) = match mode {
        "file" => {
            let (d, n) = airlock_attest::hash_reader(std::fs::File::open(&path).unwrap()).unwrap();
            (d.hex(), n, 1)
        }
        "tree" => {
            let tmp = tempfile::NamedTempFile::new_in(std::env::temp_dir()).unwrap();
            let (d, n) =
                airlock_runner::fetch::source_archive::pack_dir(&path, tmp.path()).unwrap();
            (d.hex(), n, 0)
        }
        "files" => {
            let mut all = Vec::new();
            walk(&path, &mut all);
            let mut total = 0;
            let mut last = String::new();
            for f in &all {
                let (d, n) = airlock_attest::hash_reader(std::fs::File::open(f).unwrap()).unwrap();
                total += n;
                last = d.hex();
            }
            (last, total, all.len())
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{mode} {digest} {bytes} {files} {secs:.3} {:.1}",
        bytes as f64 / 1_048_576.0 / secs
    );
}
