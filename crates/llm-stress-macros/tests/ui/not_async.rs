#[llm_stress_macros::stress(isl = [128])]
fn chat(t: Trial) -> TrialResult {
    Ok(t.into())
}

fn main() {}
