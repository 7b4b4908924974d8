//! Embeds every file under units/ so the binary is self-contained (`--units DIR` can still override).
use std::fmt::Write as _;
use std::path::Path;

fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read units/")
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out);
        } else {
            out.push(
                p.strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let units = root.join("units");
    println!("cargo:rerun-if-changed=units");
    let mut files = Vec::new();
    walk(&units, &units, &mut files);
    let mut src =
        String::from("/// (path under units/, contents)\npub static UNITS: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed=units/{f}");
        writeln!(
            src,
            "    ({f:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/units/{f}\"))),"
        )
        .unwrap();
    }
    src.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_units.rs");
    std::fs::write(out, src).unwrap();
}
