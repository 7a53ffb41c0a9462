#[test]
fn scratch() {
    let n = 1_000_000;
    let mut text = String::from("(canceltree 1)\n(main ");
    for _ in 0..n { text.push_str("(do "); }
    text.push_str("(sleep 1)");
    for _ in 0..n { text.push(')'); }
    text.push(')');
    let t = std::time::Instant::now();
    let h = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
        let p = canceltree::syntax::parse("deep.ct", &text).unwrap();
        eprintln!("parse {:?}", t.elapsed());
        let out = canceltree::syntax::print(&p);
        eprintln!("print {:?} {}", t.elapsed(), out.len());
        let q = canceltree::syntax::parse("deep.ct", &out).unwrap();
        assert!(p == q);
        eprintln!("reparse {:?}", t.elapsed());
    }).unwrap();
    h.join().unwrap();
}
