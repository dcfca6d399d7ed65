#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Inner { isl: Vec<u32>, mode: Mode }
#[derive(serde::Deserialize, Debug)]
#[serde(rename_all="snake_case")]
enum Mode { Single, Multiple }
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Top { name: String, matrix: Inner }
fn main() {
    for s in ["name: x\nmatrix:\n  isl: [1, 2]\n  mode: single\n  concurrncy: 3\n", "name: x\nmatrix:\n  isl: [1, two]\n  mode: single\n", "name: x\nmatrix:\n  isl: [1]\n  mode: sngle\n", "name: x\nmatrix:\n  isl: [1]\n", "name: [x\n"] {
        let e = serde_saphyr::from_str::<Top>(s).unwrap_err();
        println!("DISPLAY: {e}\nLOC: {:?}\nDEBUG: {:?}\n----", e.location(), e);
    }
}
