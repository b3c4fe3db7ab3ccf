//! Running a benchmark: setup (accounts, tokens), the virtual users' loops, pacing for a fixed
//! arrival rate, and turning what they recorded into a [`Report`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

use crate::{
    Options, Report, Scenario,
    agent::{Agent, FlowError, Jar, StepTimes, micros},
    flows::{self, AuthorizationRequest, Person, Shared},
    jwk::IdTokenVerifier,
    pacer::Pacer,
    procstat,
    report::Recorder,
    server::{Counters, ServerCounts},
};

/// What one virtual user repeats, with its own state.
enum Work {
    Login { people: Vec<Person>, next: usize, verifier: Box<IdTokenVerifier> },
    Refresh { refresh_token: String },
    Userinfo { access_token: String },
    Discovery { jwks: bool },
}

impl Work {
    async fn once(&mut self, shared: &Shared, times: &mut StepTimes) -> Result<(), FlowError> {
        match self {
            Work::Login { people, next, verifier } => {
                let count = people.len();
                let person = &mut people[*next % count];
                *next += 1;
                flows::login(shared, verifier, person, times).await
            }
            Work::Refresh { refresh_token } => flows::refresh(shared, refresh_token, times).await,
            Work::Userinfo { access_token } => flows::userinfo(shared, access_token, times).await,
            Work::Discovery { jwks } => {
                *jwks = !*jwks;
                flows::discovery(shared, *jwks, times).await
            }
        }
    }
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let agent = Agent::new(&options.target, options.concurrency)?;
    let shared = Arc::new(Shared::new(options, agent).await?);
    let users = options.user_count();
    let accounts = sign_up_all(&shared.agent, users, options.concurrency).await?;
    let mut owned: Vec<Vec<(Person, Jar)>> = (0..options.concurrency).map(|_| Vec::new()).collect();
    for (index, account) in accounts.into_iter().enumerate() {
        owned[index % options.concurrency].push(account);
    }
    if options.scenario == Scenario::Token {
        return token_rounds(options, shared, users, owned).await;
    }
    let mut works = Vec::with_capacity(options.concurrency);
    for mine in owned {
        works.push(prepare(options.scenario, &shared, mine).await.map_err(|e| anyhow::anyhow!("setup: {e}"))?);
    }
    let before = Counters::scrape(&shared.agent, &options.watch_processes).await;
    let measure_from = Instant::now() + options.warmup;
    let until = measure_from + options.duration;
    let pacer = options.rate.map(|rate| Pacer::new(rate, Some(until)));
    let cpu_before = cpu_at(measure_from);
    let mut set = JoinSet::new();
    for mut work in works {
        let (shared, pacer) = (shared.clone(), pacer.clone());
        set.spawn(async move {
            let mut recorder = Recorder::default();
            let mut times = StepTimes::new();
            loop {
                let scheduled = match &pacer {
                    Some(pacer) => match pacer.next().await {
                        Some(at) => at,
                        None => break,
                    },
                    None if Instant::now() >= until => break,
                    None => Instant::now(),
                };
                times.clear();
                let result = work.once(&shared, &mut times).await;
                record(&mut recorder, result, scheduled, scheduled >= measure_from, &mut times);
            }
            recorder
        });
    }
    let cpu_before = cpu_before.await.ok().flatten();
    let mut recorder = Recorder::default();
    while let Some(done) = set.join_next().await {
        recorder.merge(done?);
    }
    let cpu = cpu_before.zip(procstat::own()).map(|(a, b)| (b - a).as_secs_f64() / options.duration.as_secs_f64());
    let server = match (before, Counters::scrape(&shared.agent, &options.watch_processes).await) {
        (Some(before), Some(after)) => Some(ServerCounts::of(&after.growth_since(&before), recorder.completed)),
        _ => None,
    };
    Ok(Report::build(options, users, recorder, options.duration, server, cpu))
}

/// The process CPU time at `at` (read by a task sleeping until then).
fn cpu_at(at: Instant) -> tokio::task::JoinHandle<Option<Duration>> {
    tokio::spawn(async move {
        tokio::time::sleep_until(at.into()).await;
        procstat::own()
    })
}

fn record(
    recorder: &mut Recorder,
    result: Result<(), FlowError>,
    started: Instant,
    measured: bool,
    times: &mut StepTimes,
) {
    match result {
        Ok(()) => {
            recorder.completed += 1;
            if measured {
                recorder.flows.push(micros(started));
                for (step, micros) in times.drain(..) {
                    recorder.steps.entry(step).or_default().push(micros);
                }
            }
        }
        // Failures count during warm-up too: any failure fails the run.
        Err(error) => *recorder.errors.entry(error.to_string()).or_default() += 1,
    }
}

/// Signs up `count` accounts, `concurrency` at a time.
async fn sign_up_all(agent: &Agent, count: usize, concurrency: usize) -> anyhow::Result<Vec<(Person, Jar)>> {
    let run = &flows::random_value()[..8].to_lowercase().replace(['-', '_'], "x");
    let mut accounts = Vec::with_capacity(count);
    let mut set = JoinSet::new();
    for index in 0..count {
        if set.len() >= concurrency.max(1) {
            accounts.push(set.join_next().await.expect("a task is running")??);
        }
        let (agent, username) = (agent.clone(), format!("bench-{run}-{index}"));
        set.spawn(async move {
            let (authenticator, jar) =
                flows::sign_up(&agent, &username).await.map_err(|e| anyhow::anyhow!("signing up {username}: {e}"))?;
            anyhow::Ok((Person { username, authenticator, returning: Jar::default() }, jar))
        });
    }
    while let Some(done) = set.join_next().await {
        accounts.push(done??);
    }
    Ok(accounts)
}

/// A virtual user's state for `scenario`, from its accounts (each signed in since sign-up).
async fn prepare(scenario: Scenario, shared: &Shared, mut mine: Vec<(Person, Jar)>) -> Result<Work, FlowError> {
    Ok(match scenario {
        Scenario::Login | Scenario::Token => Work::Login {
            verifier: Box::new(shared.verifier().map_err(|e| FlowError::new("setup", e.to_string()))?),
            people: mine.into_iter().map(|(person, _)| person).collect(),
            next: 0,
        },
        Scenario::Refresh => Work::Refresh {
            refresh_token: first_tokens(shared, &mut mine)
                .await?
                .refresh_token
                .ok_or_else(|| FlowError::new("setup", "no refresh token"))?,
        },
        Scenario::Userinfo => Work::Userinfo { access_token: first_tokens(shared, &mut mine).await?.access_token },
        Scenario::Discovery => Work::Discovery { jwks: false },
    })
}

/// Tokens for the first account's signed-in browser: a code minted and exchanged.
async fn first_tokens(shared: &Shared, mine: &mut [(Person, Jar)]) -> Result<flows::Tokens, FlowError> {
    let (_, jar) = mine.first_mut().ok_or_else(|| FlowError::new("setup", "no account"))?;
    let (code, request) = flows::mint_code(shared, jar).await?;
    flows::exchange_code(shared, &code, &request.verifier, &mut StepTimes::new()).await
}

/// One virtual user's minted codes: its index, its signed-in browser, and `(code, request)`s.
type MintedBatch = (usize, Jar, Vec<(String, AuthorizationRequest)>);

/// The token scenario: rounds of minting codes (unmeasured) then exchanging them (measured),
/// until the measured time reaches the duration.
async fn token_rounds(
    options: &Options,
    shared: Arc<Shared>,
    users: usize,
    owned: Vec<Vec<(Person, Jar)>>,
) -> anyhow::Result<Report> {
    let concurrency = options.concurrency;
    let mut jars: Vec<Jar> = owned.into_iter().map(|mut mine| mine.swap_remove(0).1).collect();
    // Big rounds keep the ramp-up and tail of each measured phase small; codes live 60 s.
    let per_vu = 2000usize.max(50 * concurrency).div_ceil(concurrency);
    let (mut measured, mut recorder, mut growth) = (Duration::ZERO, Recorder::default(), Counters::default());
    let mut cpu_used = Duration::ZERO;
    let mut warming = !options.warmup.is_zero();
    while measured < options.duration {
        let mut minting = JoinSet::new();
        for (index, mut jar) in jars.drain(..).enumerate() {
            let shared = shared.clone();
            minting.spawn(async move {
                let mut codes = Vec::with_capacity(per_vu);
                for _ in 0..per_vu {
                    codes.push(flows::mint_code(&shared, &mut jar).await?);
                }
                Ok::<_, FlowError>((index, jar, codes))
            });
        }
        let mut batches: Vec<MintedBatch> = Vec::new();
        while let Some(done) = minting.join_next().await {
            batches.push(done?.map_err(|e| anyhow::anyhow!("minting codes: {e}"))?);
        }
        batches.sort_by_key(|(index, _, _)| *index);
        let before = Counters::scrape(&shared.agent, &options.watch_processes).await;
        let cpu_before = procstat::own();
        let started = Instant::now();
        let pacer = options.rate.map(|rate| Pacer::new(rate, None));
        let mut exchanging = JoinSet::new();
        for (_, jar, codes) in batches {
            jars.push(jar);
            let (shared, pacer) = (shared.clone(), pacer.clone());
            exchanging.spawn(async move {
                let mut recorder = Recorder::default();
                let mut times = StepTimes::new();
                for (code, request) in codes {
                    let scheduled = match &pacer {
                        Some(pacer) => pacer.next().await.expect("a pacer without an end goes on"),
                        None => Instant::now(),
                    };
                    times.clear();
                    let result = flows::exchange_code(&shared, &code, &request.verifier, &mut times).await;
                    let result = result.and_then(|tokens| match tokens.id_token {
                        Some(_) => Ok(()),
                        None => Err(FlowError::new("token", "no id_token")),
                    });
                    record(&mut recorder, result, scheduled, true, &mut times);
                }
                recorder
            });
        }
        let mut round = Recorder::default();
        while let Some(done) = exchanging.join_next().await {
            round.merge(done?);
        }
        let elapsed = started.elapsed();
        if let (Some(before), Some(after)) = (before, Counters::scrape(&shared.agent, &options.watch_processes).await) {
            growth.add(&after.growth_since(&before));
        }
        if warming {
            warming = false;
            round.flows.clear();
            round.steps.clear();
        } else {
            measured += elapsed;
            cpu_used += cpu_before.zip(procstat::own()).map(|(a, b)| b - a).unwrap_or_default();
        }
        recorder.merge(round);
    }
    let server = Some(ServerCounts::of(&growth, recorder.completed));
    let cpu = Some(cpu_used.as_secs_f64() / measured.as_secs_f64().max(1e-9));
    Ok(Report::build(options, users, recorder, measured, server, cpu))
}
