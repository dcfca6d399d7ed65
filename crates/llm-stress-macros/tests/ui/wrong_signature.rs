#[llm_stress_macros::accuracy]
async fn chat(t: Trial, extra: u32) -> TrialResult {
    Ok(t.run().await?.into())
}

fn main() {}
