//! `docs/catalogue.md` is the catalogue as the code defines it.

#[test]
fn the_catalogue_page_is_the_catalogue() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/catalogue.md");
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(
        page == concord_stats::page::markdown(),
        "{} is out of date: regenerate it with `concord templates --markdown > docs/catalogue.md`",
        path.display()
    );
    for t in concord_stats::TEMPLATES {
        assert!(page.contains(&format!("\n## {}\n", t.info().id)));
    }
}
