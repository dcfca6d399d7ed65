#[llm_stress_macros::perf(case = "stress-cases/chat.yaml", concurency = [1, 8])]
async fn chat(t: Trial) -> TrialResult {
    Ok(t.run().await?.into())
}

fn main() {}
