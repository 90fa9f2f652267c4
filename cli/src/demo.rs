//! `tandem demo`: an embedded relay and three devices of one account
//! (phone, laptop, tablet) play a short story: two devices online making
//! changes, the third offline; it catches up; then, all offline, they
//! make conflicting changes, reconnect, and every device shows the same
//! outcome with the rule that decided it; the laptop kicks the tablet, and
//! the kick holds: neither the tablet's file nor its login token, even
//! under a new device id, gets back in; at the end a side-by-side table
//! shows the three states are identical. The devices are linked first
//! (the phone makes the account key, the others take it through link
//! codes), so everything they push is sealed: at the end the demo checks
//! that the relay's files hold none of the text. `--json` adds a one-line
//! summary of the conflicts' outcomes per device.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::sync::SyncEvent;
use tandem_engine::*;
use tandem_online::{OnlineConfig, OnlineDevice, Status};
use tandem_relay::secret::Secret;
use tandem_relay::{Relay, RelayConfig, StoreLocation};

/// How long any step of the story may take before the demo gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the relay's and the devices' SQLite files (default: a
    /// temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// End with a one-line JSON summary: each conflict's outcome on each
    /// device, the rule that decided it, and whether the states are
    /// identical.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp;
    let dir = match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary folder")?;
            temp.path().to_owned()
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (identical, summary) = runtime.block_on(story(&dir))?;
    if args.json {
        println!("{summary}");
    }
    if !identical {
        bail!("the devices did not converge to the same state");
    }
    Ok(())
}

struct Member {
    name: &'static str,
    device: OnlineDevice,
}

async fn story(dir: &Path) -> anyhow::Result<(bool, serde_json::Value)> {
    let secret = Secret::generate().context("generating the relay secret")?;
    let config = RelayConfig::new(
        "127.0.0.1:0".parse().expect("a literal address"),
        StoreLocation::Sqlite(dir.join("relay.db")),
        secret.clone(),
    );
    let relay = Relay::bind(config).await?;
    let addr = relay.local_addr();
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay_task = tokio::spawn(relay.serve(async {
        let _ = relay_stopped.await;
    }));
    println!("Tandem demo: one account (alice), three devices, a relay on {addr}");
    println!("state files in {}\n", dir.display());

    let account = AccountId::new("alice")?;
    let mut members = Vec::new();
    let mut tokens = BTreeMap::new();
    let mut engines = Vec::new();
    for (name, platform, online) in [
        ("phone", Platform::Ios, true),
        ("laptop", Platform::Macos, true),
        ("tablet", Platform::Android, false),
    ] {
        let engine = Engine::open(
            Config {
                store: StorePath::File(dir.join(format!("{name}.db"))),
                account: account.clone(),
                device_name: name.into(),
                platform,
            },
            now_ms(),
            Box::new(OsEntropy),
        )?;
        engines.push((name, online, engine));
    }
    link_devices(&mut engines)?;
    for (name, online, engine) in engines {
        // Each device logs in once with its own single-use login token
        // (what the app's auth service hands out); then its key does.
        let token = login_token(&secret, &account)?;
        tokens.insert(name, token.clone());
        let device = OnlineDevice::spawn(
            engine,
            OnlineConfig {
                start_online: online,
                ..OnlineConfig::new(addr.to_string()).with_login_token(token)
            },
        )?;
        members.push(Member { name, device });
    }
    let names: BTreeMap<DeviceId, &'static str> = members
        .iter()
        .map(|m| (m.device.device_id(), m.name))
        .collect();
    for member in &members {
        print_events(member, names.clone());
    }
    let [phone, laptop, tablet] = &members[..] else {
        unreachable!("three members")
    };
    for m in [phone, laptop] {
        wait_for(m, "online", |s| s.is_connected()).await?;
    }
    println!("phone and laptop are online; the tablet is offline\n");

    step("Messages arrive and are sent");
    let mut bodies = Bodies::new(7);
    for (i, (conversation, sender)) in [
        ("u:bob", "bob"),
        ("u:carol", "carol"),
        ("g:family", "mum"),
        ("u:spam", "spammer"),
    ]
    .into_iter()
    .enumerate()
    {
        for j in 0..6 {
            let device = if j % 2 == 0 { phone } else { laptop };
            device
                .device
                .perform(Op::Message(MessageOp::Ingest {
                    message: IncomingMessage {
                        id: MessageId::new(format!("srv-{i}-{j}"))?,
                        conversation: conversation.parse()?,
                        sender: UserId::new(sender)?,
                        sent_at_ms: now_ms(),
                        body: bodies.next(),
                    },
                }))
                .await?;
        }
    }
    phone
        .device
        .perform(Op::Message(MessageOp::Send {
            conversation: "u:bob".parse()?,
            body: "See you at eight!".into(),
        }))
        .await?;
    converge(&[phone, laptop]).await?;

    step("Conversations read, pinned and deleted");
    laptop
        .device
        .perform(Op::Conversation(ConversationOp::MarkRead {
            conversation: "u:bob".parse()?,
            message: MessageId::new("srv-0-4")?,
        }))
        .await?;
    phone
        .device
        .perform(Op::Conversation(ConversationOp::Pin {
            conversation: "g:family".parse()?,
        }))
        .await?;
    laptop
        .device
        .perform(Op::Conversation(ConversationOp::ClearUnread {
            conversation: "u:carol".parse()?,
        }))
        .await?;
    laptop
        .device
        .perform(Op::Conversation(ConversationOp::Delete {
            conversation: "u:spam".parse()?,
        }))
        .await?;
    converge(&[phone, laptop]).await?;

    step("Contacts added and blocked");
    phone
        .device
        .perform(Op::Contact(ContactOp::Add {
            user: UserId::new("dave")?,
            greeting: "Hi Dave, it's Alice".into(),
        }))
        .await?;
    laptop
        .device
        .perform(Op::Contact(ContactOp::Accept {
            user: UserId::new("erin")?,
        }))
        .await?;
    phone
        .device
        .perform(Op::Contact(ContactOp::Block {
            user: UserId::new("spammer")?,
        }))
        .await?;
    converge(&[phone, laptop]).await?;

    step("A group created and changed");
    let trip = GroupId::new("trip")?;
    laptop
        .device
        .perform(Op::Group(GroupOp::Create {
            group: trip.clone(),
            name: "Weekend trip".into(),
            members: vec![UserId::new("bob")?, UserId::new("carol")?],
        }))
        .await?;
    converge(&[phone, laptop]).await?;
    phone
        .device
        .perform(Op::Group(GroupOp::Invite {
            group: trip.clone(),
            users: vec![UserId::new("dave")?],
        }))
        .await?;
    laptop
        .device
        .perform(Op::Group(GroupOp::UpdateInfo {
            group: trip.clone(),
            update: GroupInfoUpdate {
                announcement: Some("Bring boots".into()),
                ..Default::default()
            },
        }))
        .await?;
    laptop
        .device
        .perform(Op::Group(GroupOp::AddAdmin {
            group: trip.clone(),
            user: UserId::new("bob")?,
        }))
        .await?;
    converge(&[phone, laptop]).await?;

    step("The tablet comes online and catches up");
    let head = phone.device.read(|e| e.relay_cursor()).await??;
    let mut merged = tablet.device.subscribe();
    tablet.device.set_online(true).await?;
    let progress = async {
        loop {
            match merged.recv().await {
                Ok(SyncEvent::CatchUpStarted { from_seq, to_seq }) => {
                    println!("  catch-up started: from {from_seq} to {to_seq}");
                }
                Ok(SyncEvent::CatchUpFinished { cursor }) => {
                    println!("  catch-up finished at {cursor}");
                    return anyhow::Ok(());
                }
                Ok(SyncEvent::Merged(_)) => {
                    let cursor = tablet.device.read(|e| e.relay_cursor()).await??;
                    println!("  catch-up: {cursor}/{head} log entries merged");
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, progress)
        .await
        .context("the tablet did not catch up in time")??;
    converge(&[phone, laptop, tablet]).await?;

    let summary = conflicts(phone, laptop, tablet).await?;

    step("The account's devices, as the relay lists them");
    let devices = laptop.device.devices().await?;
    println!("  {:<34} {:<8} {:<8} online", "device", "name", "platform");
    for d in &devices {
        println!(
            "  {:<34} {:<8} {:<8} {}",
            d.id.to_hex(),
            d.name,
            d.platform,
            if d.online { "yes" } else { "no" }
        );
    }

    step("The laptop kicks the tablet");
    laptop.device.kick_device(tablet.device.device_id()).await?;
    wait_for(tablet, "kicked", |s| s.kicked_by().is_some()).await?;
    // Let the tablet's event printer show the kick.
    tokio::time::sleep(Duration::from_millis(100)).await;

    step("The kick holds");
    // The tablet's file and key alone: refused, with the reason.
    tablet.device.set_online(true).await?;
    let refused = stop_of(tablet, "refused").await?;
    println!("  the tablet tries again with its key: {refused}");
    // Someone who copied the tablet's login token, on a new device.
    let stolen = Engine::open(
        Config {
            store: StorePath::File(dir.join("stolen.db")),
            account: account.clone(),
            device_name: "stolen".into(),
            platform: Platform::Android,
        },
        now_ms(),
        Box::new(OsEntropy),
    )?;
    let stolen = Member {
        name: "stolen",
        device: OnlineDevice::spawn(
            stolen,
            OnlineConfig::new(addr.to_string()).with_login_token(tokens["tablet"].clone()),
        )?,
    };
    let refused = stop_of(&stolen, "refused").await?;
    println!("  a new device with the tablet's login token: {refused}");
    let nothing = stolen.device.read(|e| e.relay_cursor()).await??;
    println!("  the new device pulled {nothing} deltas");
    stolen.device.shutdown().await?;
    // A new login token from the auth service logs the tablet in again.
    tablet
        .device
        .relogin(login_token(&secret, &account)?)
        .await?;
    wait_for(tablet, "online again", |s| s.in_step).await?;
    println!("  the tablet logs in again with a new login token: in step");

    let identical = final_table(&members).await?;
    for member in members {
        member.device.shutdown().await?;
    }
    let _ = stop_relay.send(());
    relay_task.await??;
    step("What the relay kept");
    relay_holds_no_text(&dir.join("relay.db"))?;
    let summary = serde_json::json!({ "identical": identical, "conflicts": summary });
    Ok((identical, summary))
}

/// Links the devices before they go online: the first makes the account
/// key, each other one shows a link code that the first grants (what a
/// phone's camera and a QR code do in an app), so every device seals what
/// it pushes.
fn link_devices(engines: &mut [(&'static str, bool, Engine)]) -> anyhow::Result<()> {
    step("The devices are linked: one account key, end to end");
    let [(first, _, granter), others @ ..] = engines else {
        bail!("no devices to link");
    };
    let fingerprint = granter.create_account_key(now_ms())?;
    println!("  {first} makes the account key: fingerprint {fingerprint}");
    let granter_key = granter.device().public_key;
    for (name, _, engine) in others {
        let code = engine.show_link_code(now_ms())?;
        let grant = granter.grant_link(&code.code, now_ms())?;
        let printed = engine.accept_link_grant(&grant, &granter_key, now_ms())?;
        println!(
            "  {name} shows a link code ({} characters), {first} grants it: fingerprint {printed}",
            code.code.len()
        );
        if printed != fingerprint {
            bail!("{name} holds another key than {first}");
        }
    }
    println!(
        "  the roster lists {} devices; the relay will carry only sealed envelopes",
        granter.roster()?.len()
    );
    Ok(())
}

/// Checks that the relay's SQLite files (database and WAL) hold none of
/// the text the devices exchanged, and says so.
fn relay_holds_no_text(db: &Path) -> anyhow::Result<()> {
    let mut stored = Vec::new();
    for suffix in ["", "-wal"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            stored.extend(bytes);
        }
    }
    let texts = [
        "See you at eight!",
        "Hi Dave, it's Alice",
        "srv-0-4",
        "u:carol",
        "g:family",
    ];
    let found: Vec<_> = texts
        .iter()
        .filter(|t| stored.windows(t.len()).any(|w| w == t.as_bytes()))
        .collect();
    if !found.is_empty() {
        bail!("the relay's files hold text the devices sealed: {found:?}");
    }
    println!(
        "  relay.db ({} bytes) holds none of the messages, ids or conversation names \
         ({} checked): it keeps the account's device list and sealed envelopes",
        stored.len(),
        texts.len()
    );
    Ok(())
}

/// A conflict's name, its rule, and its outcome on each device.
type Outcome = (&'static str, &'static str, Vec<(&'static str, String)>);

/// The rules that decide the conflicts, as the demo prints them.
const PIN_RULE: &str = "a pin is a register: concurrent writes resolve by automerge's op order, \
     the same on every device; the tablet's unpin was written after it had seen the laptop's \
     pin, so it comes later than the phone's pin, which had not";
const CONTACT_RULE: &str = "an edit inside a removed contact does not bring it back";
const DELETE_RULE: &str = "deleting clears up to its time; a newer message keeps the \
     conversation, and only that message is unread";

/// Offline, the devices make changes that conflict; once they reconnect,
/// every device shows the same outcome. Returns each conflict's outcome on
/// each device, with its rule.
async fn conflicts(
    phone: &Member,
    laptop: &Member,
    tablet: &Member,
) -> anyhow::Result<Vec<serde_json::Value>> {
    step("Offline, the devices make changes that conflict");
    // The phone goes offline first, so it never sees the laptop's pin.
    phone.device.set_online(false).await?;
    wait_for(phone, "offline", |s| !s.is_connected()).await?;
    laptop
        .device
        .perform(Op::Conversation(ConversationOp::Pin {
            conversation: "u:carol".parse()?,
        }))
        .await?;
    converge(&[laptop, tablet]).await?;
    println!("  the laptop pinned u:carol; the tablet saw it, the phone (offline) did not");
    for m in [laptop, tablet] {
        m.device.set_online(false).await?;
        wait_for(m, "offline", |s| !s.is_connected()).await?;
    }
    println!("  now all three are offline");
    let carol: ConversationId = "u:carol".parse()?;
    let bob: ConversationId = "u:bob".parse()?;
    let erin = UserId::new("erin")?;
    phone
        .device
        .perform(Op::Conversation(ConversationOp::Pin {
            conversation: carol.clone(),
        }))
        .await?;
    println!("  [phone ] pins u:carol");
    tablet
        .device
        .perform(Op::Conversation(ConversationOp::Unpin {
            conversation: carol.clone(),
        }))
        .await?;
    println!("  [tablet] unpins u:carol");
    phone
        .device
        .perform(Op::Contact(ContactOp::Remove { user: erin.clone() }))
        .await?;
    println!("  [phone ] removes the contact erin");
    tablet
        .device
        .perform(Op::Contact(ContactOp::SetRemark {
            user: erin.clone(),
            remark: "Erin from work".into(),
        }))
        .await?;
    println!("  [tablet] renames erin \"Erin from work\"");
    tablet
        .device
        .perform(Op::Conversation(ConversationOp::Delete {
            conversation: bob.clone(),
        }))
        .await?;
    println!("  [tablet] deletes the conversation u:bob");
    tokio::time::sleep(Duration::from_millis(5)).await;
    laptop
        .device
        .perform(Op::Message(MessageOp::Ingest {
            message: IncomingMessage {
                id: MessageId::new("srv-0-9")?,
                conversation: bob.clone(),
                sender: UserId::new("bob")?,
                sent_at_ms: now_ms(),
                body: "Are we still on for tonight?".into(),
            },
        }))
        .await?;
    println!("  [laptop] a new message from bob arrives in u:bob");

    step("Back online: every device shows the same outcome");
    // The laptop and the tablet come back first and the phone last, so
    // every run hears the changes in the same order (which one an event
    // calls superseded depends on what its device had merged before).
    println!("  the laptop and the tablet come back online, then the phone");
    for m in [laptop, tablet] {
        m.device.set_online(true).await?;
    }
    converge(&[laptop, tablet]).await?;
    phone.device.set_online(true).await?;
    converge(&[phone, laptop, tablet]).await?;
    let mut outcomes: Vec<Outcome> = vec![
        ("pin vs unpin of u:carol", PIN_RULE, Vec::new()),
        ("erin removed vs renamed", CONTACT_RULE, Vec::new()),
        ("u:bob deleted vs a new message", DELETE_RULE, Vec::new()),
    ];
    for m in [phone, laptop, tablet] {
        let (carol_row, bob_row, erin_row, bob_page) = {
            let (carol, bob, erin) = (carol.clone(), bob.clone(), erin.clone());
            m.device
                .read(move |e| -> Result<_, tandem_engine::StoreError> {
                    Ok((
                        e.conversation(&carol)?,
                        e.conversation(&bob)?,
                        e.contacts()?
                            .into_iter()
                            .find(|c| c.user_id == erin.as_str()),
                        e.messages(&bob, None, 100)?,
                    ))
                })
                .await??
        };
        let pinned = carol_row.is_some_and(|c| c.settings.pinned);
        outcomes[0].2.push((
            m.name,
            format!("pinned={}", if pinned { "yes" } else { "no" }),
        ));
        outcomes[1].2.push((
            m.name,
            match erin_row {
                Some(c) => format!("erin={} remark={:?}", c.status, c.remark),
                None => "erin=removed".into(),
            },
        ));
        let bob_row = bob_row.context("u:bob has a row")?;
        outcomes[2].2.push((
            m.name,
            format!(
                "listed={} visible={} unread={}",
                if bob_row.listed { "yes" } else { "no" },
                bob_page
                    .iter()
                    .map(|v| v.id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                bob_row.unread
            ),
        ));
    }
    let mut summary = Vec::new();
    for (name, rule, per_device) in outcomes {
        println!("  {name}:");
        for (device, outcome) in &per_device {
            println!("    [{device:<6}] {outcome}");
        }
        println!("    rule: {rule}");
        summary.push(serde_json::json!({
            "conflict": name,
            "rule": rule,
            "outcome": per_device
                .iter()
                .map(|(d, o)| ((*d).to_owned(), serde_json::Value::from(o.clone())))
                .collect::<serde_json::Map<_, _>>(),
        }));
    }
    Ok(summary)
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fresh single-use login token for `account`, valid ten minutes: what
/// an app's auth service issues after checking the user's password.
fn login_token(secret: &Secret, account: &AccountId) -> anyhow::Result<String> {
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut id = [0u8; tandem_relay::token::TOKEN_ID_BYTES];
    OsEntropy.fill(&mut id);
    Ok(tandem_relay::token::issue_login(
        secret,
        account,
        tandem_relay::token::Purpose::Login,
        now_s + tandem_relay::token::LOGIN_TOKEN_VALID_S_DEFAULT,
        id,
    ))
}

/// Waits until the relay refuses the device's login, and says why.
async fn stop_of(member: &Member, what: &str) -> anyhow::Result<String> {
    wait_for(member, what, |s| {
        matches!(s.stopped, Some(tandem_online::StopReason::Refused { .. }))
    })
    .await?;
    let status = member.device.status().borrow().clone();
    Ok(status.stopped.map_or_else(String::new, |s| s.to_string()))
}

/// Prints every multi-device event a device merges, as it merges it.
fn print_events(member: &Member, names: BTreeMap<DeviceId, &'static str>) {
    let mut stream = member.device.events();
    let me = member.name;
    tokio::spawn(async move {
        while let Ok(event) = stream.next().await {
            let from = names
                .get(&event.source_device)
                .copied()
                .unwrap_or("another device");
            if from == me {
                // Connection events about this device come from the relay.
                println!("  [{me:<6}] relay says        : {}", describe(&event));
            } else {
                println!("  [{me:<6}] heard from {from:<6}: {}", describe(&event));
            }
        }
    });
}

/// `category op key=value …` from the event's JSON form.
fn describe(event: &Event) -> String {
    let json = event.to_json_value();
    let mut out = format!(
        "{} {}",
        json["category"].as_str().unwrap_or("?"),
        json["op"].as_str().unwrap_or("?")
    );
    if let serde_json::Value::Object(fields) = &json {
        for (key, value) in fields {
            if !matches!(
                key.as_str(),
                "seq" | "source_device" | "made_at_ms" | "superseded" | "category" | "op"
            ) {
                let value = match value {
                    // Keys are 64 hex digits: their start names them well
                    // enough here.
                    serde_json::Value::String(s) if key.ends_with("_pk") && s.len() > 12 => {
                        format!("{}…", s.chars().take(12).collect::<String>())
                    }
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push_str(&format!(" {key}={value}"));
            }
        }
    }
    if event.superseded {
        out.push_str(" (superseded by a concurrent change)");
    }
    out
}

async fn wait_for(
    member: &Member,
    what: &str,
    check: impl Fn(&Status) -> bool,
) -> anyhow::Result<()> {
    let mut status = member.device.status();
    tokio::time::timeout(STEP_TIMEOUT, status.wait_for(|s| check(s)))
        .await
        .with_context(|| format!("{} did not get {what} in time", member.name))??;
    Ok(())
}

/// Waits until the devices hold the same document and projections.
async fn converge(members: &[&Member]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let mut seen = Vec::new();
        for m in members {
            let (heads, state) = m.device.read(|e| (e.doc_heads(), e.state())).await?;
            seen.push((heads?, state?));
        }
        let states = seen;
        if states.windows(2).all(|w| w[0] == w[1]) {
            // Let the event printers catch up before the next step.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("devices did not converge in {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints the three states side by side; true when they are identical.
async fn final_table(members: &[Member]) -> anyhow::Result<bool> {
    let mut columns = Vec::new();
    let mut full = Vec::new();
    for m in members {
        let (heads, state) = m.device.read(|e| (e.doc_heads(), e.state())).await?;
        let (heads, state) = (heads?, state?);
        let digest = |text: String| blake3::hash(text.as_bytes()).to_hex()[..12].to_string();
        let listed: Vec<_> = state.conversations.iter().filter(|c| c.listed).collect();
        let rows = vec![
            ("conversations listed", listed.len().to_string()),
            ("messages in the log", state.messages.len().to_string()),
            (
                "unread",
                listed.iter().map(|c| c.unread).sum::<i64>().to_string(),
            ),
            (
                "pinned",
                listed
                    .iter()
                    .filter(|c| c.settings.pinned)
                    .map(|c| c.id.clone())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "contacts",
                state
                    .contacts
                    .iter()
                    .map(|c| format!("{}({})", c.user_id, c.status))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "blocked",
                state
                    .blocklist
                    .iter()
                    .map(|b| b.user_id.clone())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "groups",
                state
                    .groups
                    .iter()
                    .map(|g| format!("{}:{} ({} members)", g.id, g.name, g.members.len()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "u:carol pinned",
                state
                    .conversations
                    .iter()
                    .any(|c| c.id == "u:carol" && c.settings.pinned)
                    .to_string(),
            ),
            (
                "u:bob listed/unread",
                state
                    .conversations
                    .iter()
                    .find(|c| c.id == "u:bob")
                    .map(|c| format!("{}/{}", c.listed, c.unread))
                    .unwrap_or_default(),
            ),
            ("document heads", digest(heads.join(","))),
            ("whole state", digest(format!("{state:?}"))),
        ];
        columns.push((m.name, rows));
        full.push((heads, state));
    }
    let identical = full.windows(2).all(|w| w[0] == w[1]);
    println!("\n== Final state, side by side");
    let width = columns
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(_, v)| v.len()))
        .max()
        .unwrap_or(8)
        .max(8);
    print!("  {:<22}", "");
    for (name, _) in &columns {
        print!(" {name:<width$}");
    }
    println!();
    for row in 0..columns[0].1.len() {
        print!("  {:<22}", columns[0].1[row].0);
        for (_, rows) in &columns {
            print!(" {:<width$}", rows[row].1);
        }
        println!();
    }
    println!("\nidentical: {}", if identical { "yes" } else { "NO" });
    Ok(identical)
}

/// Varied message bodies (20 to 400 bytes) from a fixed seed.
struct Bodies {
    state: u64,
}

impl Bodies {
    fn new(seed: u64) -> Self {
        Bodies { state: seed }
    }

    fn next(&mut self) -> String {
        const WORDS: &[&str] = &[
            "dinner", "tonight", "train", "late", "photos", "weekend", "call", "me", "when", "you",
            "can", "the", "meeting", "moved", "to", "Friday", "thanks", "see", "great", "idea",
            "running", "ten", "minutes", "behind", "bring", "umbrella",
        ];
        let mut next = || {
            // xorshift64*: fixed seed, no dependency.
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let target = 20 + (next() % 381) as usize;
        let mut body = String::new();
        while body.len() < target {
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
        }
        body.truncate(target);
        body
    }
}
