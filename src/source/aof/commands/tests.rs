use super::*;
use crate::source::resp::write_resp;

fn cmd(out: &mut Vec<u8>, args: &[&str]) {
    write_resp(args, out);
}

fn aof_dir(files: &[(&str, &[u8])], manifest: &str) -> (tempfile::TempDir, Aof) {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    std::fs::write(dir.path().join("appendonly.aof.manifest"), manifest).unwrap();
    let aof = super::super::detect(dir.path()).unwrap().unwrap();
    (dir, aof)
}

fn all(aof: &Aof, from: u64, end: u64) -> Vec<Vec<String>> {
    let mut r = AofCommands::open(aof, from, end).unwrap();
    let mut out = Vec::new();
    while let Some(c) = r.next_aof_command().unwrap() {
        out.push(
            c.args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        );
    }
    out
}

#[test]
fn chain_scan_cut_and_resume() {
    let mut base = b"#TS:100\r\n".to_vec();
    cmd(&mut base, &["SET", "a", "1"]);
    let mut incr = b"#TS:200\r\n".to_vec();
    cmd(&mut incr, &["SELECT", "3"]);
    cmd(&mut incr, &["SET", "b", "2"]);
    let resume_at = incr.len() as u64;
    incr.extend_from_slice(b"#TS:300\r\n");
    cmd(&mut incr, &["MULTI"]);
    cmd(&mut incr, &["INCR", "c"]);
    cmd(&mut incr, &["EXEC"]);
    let (_d, aof) = aof_dir(
        &[("b.aof", &base), ("i.aof", &incr)],
        "file b.aof seq 1 type b\nfile old.aof seq 1 type h\nfile i.aof seq 2 type i\n",
    );
    assert_eq!(aof.history, ["old.aof"]);
    let s = scan(&aof, None).unwrap();
    assert_eq!(s.end, aof.end());
    assert_eq!(s.total(), 6);
    assert_eq!(s.commands["SET"], 2);
    assert_eq!((s.first_ts, s.last_ts), (Some(100), Some(300)));
    assert_eq!(s.dbs.iter().copied().collect::<Vec<_>>(), [0, 3]);
    assert!(s.dropped.is_none());
    // every file starts in db 0
    let cmds = all(&aof, 0, s.end);
    assert_eq!(cmds[0], ["SELECT", "0"]);
    assert_eq!(cmds[2], ["SELECT", "0"]);
    assert_eq!(cmds.len(), 8);
    // cut before the annotation of 300: the block is left out
    let cut = scan(&aof, Some(299)).unwrap();
    assert_eq!(cut.cut, Some((300, base.len() as u64 + resume_at)));
    assert_eq!(all(&aof, 0, cut.end).len(), 5);
    // before the base: refused
    assert!(matches!(
        scan(&aof, Some(50)),
        Err(AofError::BeforeBase { .. })
    ));
    // a resume in the second file knows its database
    let from = base.len() as u64 + resume_at;
    let rest = all(&aof, from, s.end);
    assert_eq!(rest[0], ["SELECT", "3"]);
    assert_eq!(rest[1], ["MULTI"]);
    assert!(matches!(
        AofCommands::open(&aof, from - 1, s.end),
        Err(AofError::NotABoundary { .. })
    ));
}

#[test]
fn truncated_tails_are_dropped_in_the_last_file_only() {
    let mut one = Vec::new();
    cmd(&mut one, &["SET", "a", "1"]);
    let good = one.len();
    cmd(&mut one, &["MULTI"]);
    cmd(&mut one, &["SET", "b", "2"]);
    let (_d, aof) = aof_dir(
        &[("i1.aof", &one), ("i2.aof", b"")],
        "file i1.aof seq 1 type i\nfile i2.aof seq 2 type i\n",
    );
    let e = scan(&aof, None).unwrap_err().to_string();
    assert!(
        e.contains("i1.aof: offset") && e.contains("not the last file"),
        "{e}"
    );
    let (_d, aof) = aof_dir(&[("i1.aof", &one)], "file i1.aof seq 1 type i\n");
    let s = scan(&aof, None).unwrap();
    let d = s.dropped.clone().unwrap();
    assert_eq!(
        (d.offset, d.what),
        (good as u64, "a MULTI block without its EXEC")
    );
    assert_eq!(s.end, good as u64);
    assert_eq!(s.total(), 1);
    // every cut of the file: a dropped tail or a clean end, never more than was written
    for cut in 0..one.len() {
        let (_d, aof) = aof_dir(&[("i1.aof", &one[..cut])], "file i1.aof seq 1 type i\n");
        let s = scan(&aof, None).unwrap();
        assert!(s.end as usize <= cut.min(good), "cut {cut}");
    }
    // bad bytes: an error with the file and the offset
    let mut bad = one[..good].to_vec();
    bad.extend_from_slice(b"+OK\r\n");
    let (_d, aof) = aof_dir(&[("i1.aof", &bad)], "file i1.aof seq 1 type i\n");
    let e = scan(&aof, None).unwrap_err().to_string();
    assert!(e.contains(&format!("i1.aof: offset {good}")), "{e}");
    assert!(scan(&aof, Some(1)).is_err());
}

#[test]
fn a_dropped_tail_right_after_an_annotation_is_not_read() {
    // found by the fuzz target `aof`: the stream read past the scan's end into the cut command
    let (_d, aof) = aof_dir(
        &[("i1.aof", b"#TS:1\r\n*2\r\n")],
        "file i1.aof seq 1 type i\n",
    );
    let s = scan(&aof, Some(1)).unwrap();
    assert_eq!(s.end, 7);
    assert_eq!(all(&aof, 0, s.end), [["SELECT", "0"]]);
}
