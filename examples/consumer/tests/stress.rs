//! Trials of this repository: the YAML cases in `stress-cases/` and two trials written in
//! Rust. `cargo nextest run` runs them all; `cargo nextest run -E 'test(stress)'` only the
//! `[stress]` ones; `-E 'test(=[perf] tool_calls_under_load::isl128_osl64_c4_n4)'` one.

use llm_stress::prelude::*;

/// The YAML case under load at one and four users, with the case's accuracy questions asked
/// meanwhile, and checks of our own beside the case's.
#[llm_stress::stress(case = "stress-cases/chat.yaml", concurrency = [1, 4])]
async fn chat_keeps_ttft(t: Trial) -> TrialResult {
    let run = t.run().await?;
    run.require("ttft_ms.p95 < 2000")?;
    run.require_accuracy_at_least(0.9)?;
    run.check("every request was measured", !run.records().is_empty())?;
    Ok(run.into())
}

/// A trial defined wholly in Rust: the case from the builder, and every request carrying a
/// tool definition.
#[llm_stress::perf(isl = [128], osl = [64], concurrency = [1, 4])]
async fn tool_calls_under_load(t: Trial) -> TrialResult {
    let case = Case::builder()
        .server_from_env("LLM_STRESS_URL")
        .api(Api::Chat)
        .slo("error_rate < 0.01")
        .build()?;
    let run = t
        .with_case(case)
        .run_with(|req| req.tools(weather_tool()).header("x-trial", "tool-calls"))
        .await?;
    run.check(
        "every request got an answer",
        run.responses().count() == run.records().len(),
    )?;
    Ok(run.into())
}

fn weather_tool() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": { "city": { "type": "string" } },
                "required": ["city"]
            }
        }
    }])
}

llm_stress::main!();
