//! Seeded synthetic workloads: arrival times and prompt/output lengths.
//!
//! Each random quantity draws from its own ChaCha8 stream of the seed (arrivals, prompts,
//! outputs, predictions, calibration), so changing one distribution leaves the others' draws
//! as they were.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma, LogNormal, StandardNormal};
use serde::{Deserialize, Serialize};

use super::error::SimError;
use super::request::{MAX_TOKENS, SimRequest};

/// When requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Arrival {
    /// Every request at t = 0 (an offline batch).
    AtOnce,
    /// A Poisson process: exponential gaps of mean `1 / rate`.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// A renewal process with gamma-distributed gaps of mean `1 / rate` and coefficient of
    /// variation `cv` (shape `1 / cv²`): `cv` 1 is Poisson, above 1 bursty, below 1 regular.
    Gamma {
        /// Requests per second.
        rate: f64,
        /// Coefficient of variation of the gaps.
        cv: f64,
    },
}

/// A distribution of token counts. Draws are rounded to whole tokens and clamped to
/// `[1, max]` (`max` defaults to 1,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Lengths {
    /// Always this many.
    Fixed(u32),
    /// Uniform on `[min, max]`, both included.
    Uniform {
        /// Smallest.
        min: u32,
        /// Largest.
        max: u32,
    },
    /// Exponential with this mean.
    Exponential {
        /// Mean tokens.
        mean: f64,
        /// Cap.
        #[serde(default)]
        max: Option<u32>,
    },
    /// Lognormal with this mean and `sigma` the standard deviation of the log
    /// (`μ = ln(mean) − σ²/2`).
    Lognormal {
        /// Mean tokens.
        mean: f64,
        /// Standard deviation of ln(tokens).
        sigma: f64,
        /// Cap.
        #[serde(default)]
        max: Option<u32>,
    },
}

impl std::str::FromStr for Arrival {
    type Err = String;

    /// `at-once`, `poisson:RATE` or `gamma:RATE:CV`.
    fn from_str(text: &str) -> Result<Arrival, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let number = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("`{s}` is not a number in arrival `{text}`"))
        };
        match parts.as_slice() {
            ["at-once"] => Ok(Arrival::AtOnce),
            ["poisson", rate] => Ok(Arrival::Poisson {
                rate: number(rate)?,
            }),
            ["gamma", rate, cv] => Ok(Arrival::Gamma {
                rate: number(rate)?,
                cv: number(cv)?,
            }),
            _ => Err(format!(
                "arrival `{text}`: expected at-once, poisson:RATE or gamma:RATE:CV"
            )),
        }
    }
}

impl std::str::FromStr for Lengths {
    type Err = String;

    /// `N` or `fixed:N`, `uniform:MIN:MAX`, `exponential:MEAN` (or `exp:MEAN`),
    /// `lognormal:MEAN:SIGMA`.
    fn from_str(text: &str) -> Result<Lengths, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let int = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("`{s}` is not a whole number in lengths `{text}`"))
        };
        let number = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("`{s}` is not a number in lengths `{text}`"))
        };
        match parts.as_slice() {
            [n] | ["fixed", n] => Ok(Lengths::Fixed(int(n)?)),
            ["uniform", min, max] => Ok(Lengths::Uniform {
                min: int(min)?,
                max: int(max)?,
            }),
            ["exponential" | "exp", mean] => Ok(Lengths::Exponential {
                mean: number(mean)?,
                max: None,
            }),
            ["lognormal", mean, sigma] => Ok(Lengths::Lognormal {
                mean: number(mean)?,
                sigma: number(sigma)?,
                max: None,
            }),
            _ => Err(format!(
                "lengths `{text}`: expected N, fixed:N, uniform:MIN:MAX, exponential:MEAN or \
                 lognormal:MEAN:SIGMA"
            )),
        }
    }
}

/// Default cap of the unbounded length distributions.
const DEFAULT_MAX_TOKENS: u32 = 1_000_000;

/// The most requests a workload generates (about 10 GB of simulator state).
pub const MAX_REQUESTS: usize = 100_000_000;

/// A length distribution ready to sample.
enum LengthSampler {
    Fixed(u32),
    Uniform(u32, u32),
    Exponential(Exp<f64>, u32),
    Lognormal(LogNormal<f64>, u32),
}

impl LengthSampler {
    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let clamp = |x: f64, max: u32| x.round().clamp(1.0, f64::from(max)) as u32;
        match self {
            LengthSampler::Fixed(n) => *n,
            LengthSampler::Uniform(lo, hi) => rng.random_range(*lo..=*hi),
            LengthSampler::Exponential(d, max) => clamp(d.sample(rng), *max),
            LengthSampler::Lognormal(d, max) => clamp(d.sample(rng), *max),
        }
    }
}

impl Lengths {
    /// The mean of the distribution before rounding and clamping.
    pub fn mean(&self) -> f64 {
        match *self {
            Lengths::Fixed(n) => f64::from(n),
            Lengths::Uniform { min, max } => (f64::from(min) + f64::from(max)) / 2.0,
            Lengths::Exponential { mean, .. } | Lengths::Lognormal { mean, .. } => mean,
        }
    }

    fn sampler(&self, key: &str) -> Result<LengthSampler, SimError> {
        let invalid = |message: String| SimError::invalid(key, message);
        let too_long = |n: u32| n > MAX_TOKENS;
        let cap = |max: Option<u32>| match max {
            Some(0) => Err(invalid("max must be at least 1".to_string())),
            Some(m) if too_long(m) => Err(invalid(format!("max must be at most {MAX_TOKENS}"))),
            Some(m) => Ok(m),
            None => Ok(DEFAULT_MAX_TOKENS),
        };
        let positive_mean = |mean: f64| {
            if mean.is_finite() && mean >= 1.0 {
                Ok(mean)
            } else {
                Err(invalid(format!(
                    "mean must be at least 1 token, not {mean}"
                )))
            }
        };
        match *self {
            Lengths::Fixed(n) if n == 0 || too_long(n) => Err(invalid(format!(
                "fixed length must be 1 to {MAX_TOKENS}, not {n}"
            ))),
            Lengths::Fixed(n) => Ok(LengthSampler::Fixed(n)),
            Lengths::Uniform { min, max } if min == 0 || min > max || too_long(max) => {
                Err(invalid(format!(
                    "uniform needs 1 ≤ min ≤ max ≤ {MAX_TOKENS}, got min {min}, max {max}"
                )))
            }
            Lengths::Uniform { min, max } => Ok(LengthSampler::Uniform(min, max)),
            Lengths::Exponential { mean, max } => {
                let d = Exp::new(1.0 / positive_mean(mean)?).map_err(|e| invalid(e.to_string()))?;
                Ok(LengthSampler::Exponential(d, cap(max)?))
            }
            Lengths::Lognormal { mean, sigma, max } => {
                if !(sigma.is_finite() && sigma >= 0.0) {
                    return Err(invalid(format!("sigma must be ≥ 0, not {sigma}")));
                }
                let mu = positive_mean(mean)?.ln() - sigma * sigma / 2.0;
                let d = LogNormal::new(mu, sigma).map_err(|e| invalid(e.to_string()))?;
                Ok(LengthSampler::Lognormal(d, cap(max)?))
            }
        }
    }
}

/// A synthetic workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Number of requests.
    pub requests: usize,
    /// Arrival process.
    pub arrival: Arrival,
    /// Prompt lengths.
    pub prompt: Lengths,
    /// Output lengths.
    pub output: Lengths,
    /// σ of the multiplicative lognormal noise of the output-length predictor:
    /// `predicted = max(1, round(output × exp(σ·Z)))` with `Z` standard normal; 0 predicts
    /// exactly.
    #[serde(default)]
    pub prediction_sigma: f64,
    /// Seed of every random draw.
    #[serde(default)]
    pub seed: u64,
}

/// Stream numbers of the workload's ChaCha8 generators.
#[derive(Clone, Copy)]
enum Stream {
    Arrivals = 0,
    Prompts = 1,
    Outputs = 2,
    Predictions = 3,
    Calibration = 4,
}

impl WorkloadSpec {
    fn rng(&self, stream: Stream) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream as u64);
        rng
    }

    /// Checks the spec can be sampled.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.requests > MAX_REQUESTS {
            return Err(SimError::invalid(
                "workload.requests",
                format!("at most {MAX_REQUESTS}, not {}", self.requests),
            ));
        }
        self.prompt.sampler("workload.prompt")?;
        self.output.sampler("workload.output")?;
        let rate_ok = |rate: f64| rate.is_finite() && rate > 0.0;
        match self.arrival {
            Arrival::AtOnce => {}
            Arrival::Poisson { rate } if !rate_ok(rate) => {
                return Err(SimError::invalid(
                    "workload.arrival.poisson.rate",
                    format!("must be a positive number of requests per second, not {rate}"),
                ));
            }
            Arrival::Gamma { rate, cv } if !(rate_ok(rate) && cv.is_finite() && cv > 0.0) => {
                return Err(SimError::invalid(
                    "workload.arrival.gamma",
                    format!("rate and cv must be positive, got rate {rate}, cv {cv}"),
                ));
            }
            _ => {}
        }
        if !(self.prediction_sigma.is_finite() && self.prediction_sigma >= 0.0) {
            return Err(SimError::invalid(
                "workload.prediction_sigma",
                format!("must be ≥ 0, not {}", self.prediction_sigma),
            ));
        }
        Ok(())
    }

    /// The requests, in arrival order.
    pub fn generate(&self) -> Result<Vec<SimRequest>, SimError> {
        self.validate()?;
        let prompt = self.prompt.sampler("workload.prompt")?;
        let output = self.output.sampler("workload.output")?;
        let mut gaps = GapSampler::new(self.arrival)?;
        let (mut arrival_rng, mut prompt_rng, mut output_rng, mut predict_rng) = (
            self.rng(Stream::Arrivals),
            self.rng(Stream::Prompts),
            self.rng(Stream::Outputs),
            self.rng(Stream::Predictions),
        );
        let mut t = 0.0;
        let mut requests = Vec::with_capacity(self.requests);
        for _ in 0..self.requests {
            t += gaps.sample(&mut arrival_rng);
            let output_tokens = output.sample(&mut output_rng);
            requests.push(SimRequest {
                arrival_s: t,
                prompt_tokens: prompt.sample(&mut prompt_rng),
                output_tokens,
                predicted_output_tokens: self.predict(output_tokens, &mut predict_rng),
            });
        }
        Ok(requests)
    }

    fn predict(&self, output_tokens: u32, rng: &mut ChaCha8Rng) -> u32 {
        noisy_prediction(self.prediction_sigma, output_tokens, rng)
    }

    /// The workload's output-length predictor for requests that come from elsewhere (a
    /// server's clients): the same noise, on the stream the workload's own predictions use.
    pub fn predictor(&self) -> LengthPredictor {
        LengthPredictor {
            sigma: self.prediction_sigma,
            rng: self.rng(Stream::Predictions),
        }
    }

    /// `n` predicted output lengths drawn independently of the workload's own requests (its
    /// calibration stream): the history a length-binning scheduler learns its bin boundaries
    /// from.
    pub fn predicted_sample(&self, n: usize) -> Result<Vec<u32>, SimError> {
        self.validate()?;
        let output = self.output.sampler("workload.output")?;
        let mut rng = self.rng(Stream::Calibration);
        Ok((0..n)
            .map(|_| {
                let real = output.sample(&mut rng);
                self.predict(real, &mut rng)
            })
            .collect())
    }
}

/// `max(1, round(output × exp(σ·Z)))`, or `output` itself when σ is 0.
fn noisy_prediction(sigma: f64, output_tokens: u32, rng: &mut ChaCha8Rng) -> u32 {
    if sigma == 0.0 {
        return output_tokens;
    }
    let z: f64 = StandardNormal.sample(rng);
    let predicted = f64::from(output_tokens) * (sigma * z).exp();
    predicted.round().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// Predicts output lengths with a workload's noise (see [`WorkloadSpec::predictor`]).
#[derive(Debug, Clone)]
pub struct LengthPredictor {
    sigma: f64,
    rng: ChaCha8Rng,
}

impl LengthPredictor {
    /// What the predictor says a request of `output_tokens` will generate.
    pub fn predict(&mut self, output_tokens: u32) -> u32 {
        noisy_prediction(self.sigma, output_tokens, &mut self.rng)
    }
}

/// Gaps between arrivals.
enum GapSampler {
    Zero,
    Exponential(Exp<f64>),
    Gamma(Gamma<f64>),
}

impl GapSampler {
    fn new(arrival: Arrival) -> Result<GapSampler, SimError> {
        let invalid = |e: String| SimError::invalid("workload.arrival", e);
        Ok(match arrival {
            Arrival::AtOnce => GapSampler::Zero,
            Arrival::Poisson { rate } => {
                GapSampler::Exponential(Exp::new(rate).map_err(|e| invalid(e.to_string()))?)
            }
            Arrival::Gamma { rate, cv } => {
                let shape = 1.0 / (cv * cv);
                let scale = 1.0 / (rate * shape);
                GapSampler::Gamma(Gamma::new(shape, scale).map_err(|e| invalid(e.to_string()))?)
            }
        })
    }

    fn sample(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            GapSampler::Zero => 0.0,
            GapSampler::Exponential(d) => d.sample(rng),
            GapSampler::Gamma(d) => d.sample(rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn spec(arrival: Arrival, output: Lengths) -> WorkloadSpec {
        WorkloadSpec {
            requests: 20_000,
            arrival,
            prompt: Lengths::Uniform { min: 10, max: 20 },
            output,
            prediction_sigma: 0.0,
            seed: 3,
        }
    }

    #[rstest]
    #[case::exponential(Lengths::Exponential { mean: 500.0, max: None }, 500.0)]
    #[case::lognormal(Lengths::Lognormal { mean: 300.0, sigma: 0.8, max: None }, 300.0)]
    #[case::uniform(Lengths::Uniform { min: 100, max: 200 }, 150.0)]
    #[case::fixed(Lengths::Fixed(64), 64.0)]
    fn output_lengths_have_the_asked_mean(#[case] output: Lengths, #[case] mean: f64) {
        let requests = spec(Arrival::AtOnce, output).generate().unwrap();
        let got = requests
            .iter()
            .map(|r| f64::from(r.output_tokens))
            .sum::<f64>()
            / requests.len() as f64;
        assert!((got / mean - 1.0).abs() < 0.03, "mean {got}, wanted {mean}");
        assert!(
            requests
                .iter()
                .all(|r| (10..=20).contains(&r.prompt_tokens))
        );
    }

    #[rstest]
    #[case::poisson(Arrival::Poisson { rate: 50.0 }, 1.0)]
    #[case::bursty_gamma(Arrival::Gamma { rate: 50.0, cv: 3.0 }, 3.0)]
    fn arrival_gaps_have_the_asked_rate_and_variation(#[case] arrival: Arrival, #[case] cv: f64) {
        let requests = spec(arrival, Lengths::Fixed(1)).generate().unwrap();
        let gaps: Vec<f64> = requests
            .windows(2)
            .map(|w| w[1].arrival_s - w[0].arrival_s)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let std = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((mean * 50.0 - 1.0).abs() < 0.05, "mean gap {mean}");
        assert!((std / mean / cv - 1.0).abs() < 0.1, "cv {}", std / mean);
    }

    #[test]
    fn same_seed_same_workload_and_streams_are_independent() {
        let a = spec(Arrival::Poisson { rate: 5.0 }, Lengths::Fixed(8));
        assert_eq!(a.generate().unwrap(), a.generate().unwrap());
        let mut b = a.clone();
        b.output = Lengths::Fixed(9);
        let (ra, rb) = (a.generate().unwrap(), b.generate().unwrap());
        assert!(
            ra.iter()
                .zip(&rb)
                .all(|(x, y)| x.arrival_s == y.arrival_s && x.prompt_tokens == y.prompt_tokens)
        );
    }

    #[test]
    fn prediction_noise_is_multiplicative() {
        let mut s = spec(Arrival::AtOnce, Lengths::Fixed(1000));
        s.prediction_sigma = 0.5;
        let requests = s.generate().unwrap();
        let logs: Vec<f64> = requests
            .iter()
            .map(|r| (f64::from(r.predicted_output_tokens) / 1000.0).ln())
            .collect();
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let std = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
        assert!(
            mean.abs() < 0.02 && (std - 0.5).abs() < 0.02,
            "{mean} {std}"
        );
    }

    #[rstest]
    #[case::zero_fixed(Lengths::Fixed(0))]
    #[case::inverted_uniform(Lengths::Uniform { min: 5, max: 2 })]
    #[case::negative_mean(Lengths::Exponential { mean: -1.0, max: None })]
    #[case::nan_sigma(Lengths::Lognormal { mean: 10.0, sigma: f64::NAN, max: None })]
    #[case::absurdly_long(Lengths::Fixed(u32::MAX))]
    fn bad_lengths_are_errors(#[case] output: Lengths) {
        assert!(spec(Arrival::AtOnce, output).generate().is_err());
    }

    #[rstest]
    #[case("128", Lengths::Fixed(128))]
    #[case("uniform:10:20", Lengths::Uniform { min: 10, max: 20 })]
    #[case("exp:500", Lengths::Exponential { mean: 500.0, max: None })]
    #[case("lognormal:300:0.5", Lengths::Lognormal { mean: 300.0, sigma: 0.5, max: None })]
    fn lengths_parse_from_flags(#[case] text: &str, #[case] expected: Lengths) {
        assert_eq!(text.parse::<Lengths>().unwrap(), expected);
    }

    #[rstest]
    #[case("at-once", Some(Arrival::AtOnce))]
    #[case("poisson:2.5", Some(Arrival::Poisson { rate: 2.5 }))]
    #[case("gamma:3:2", Some(Arrival::Gamma { rate: 3.0, cv: 2.0 }))]
    #[case("poisson", None)]
    #[case("gamma:x:1", None)]
    fn arrivals_parse_from_flags(#[case] text: &str, #[case] expected: Option<Arrival>) {
        assert_eq!(text.parse::<Arrival>().ok(), expected);
    }

    #[test]
    fn absurd_request_counts_are_errors_not_allocations() {
        let mut s = spec(Arrival::AtOnce, Lengths::Fixed(1));
        s.requests = usize::MAX;
        assert!(s.generate().unwrap_err().to_string().contains("requests"));
    }

    #[test]
    fn bad_rate_is_an_error() {
        let s = spec(Arrival::Poisson { rate: 0.0 }, Lengths::Fixed(1));
        assert!(s.generate().unwrap_err().to_string().contains("rate"));
    }
}
