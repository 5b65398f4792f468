//! The vendored `.proto` files must stay byte-identical to upstream:
//! `proto/VENDORED.md` lists their SHA-256 sums and this test recomputes them.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

#[test]
fn vendored_protos_match_recorded_sums() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
    let notes = std::fs::read_to_string(root.join("VENDORED.md")).unwrap();
    let mut checked = 0;
    for line in notes.lines() {
        let Some((sum, file)) = line.split_once("  ") else {
            continue;
        };
        if sum.len() != 64 || !file.ends_with(".proto") {
            continue;
        }
        let bytes = std::fs::read(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let actual = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            actual, sum,
            "{file} differs from the vendored upstream file"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 10,
        "VENDORED.md should list every vendored .proto file"
    );
}
