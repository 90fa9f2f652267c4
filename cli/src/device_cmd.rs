//! Device commands: `tandem --data <file> [--account A --relay HOST:PORT
//! --token T --name N --platform P] <command>`.
//!
//! Each command opens the device's SQLite file, does one thing and exits.
//! Local operations work offline; `sync`, `devices`, `kick` and
//! `send-to-device` connect to the relay for as long as they need.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use tandem_engine::model::*;
use tandem_engine::net::{Backoff, OnlineConfig, OnlineDevice};
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_storage::device::{DeviceStore, Location};

/// How long a networked command may wait for the relay.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(30);

/// Which device, and how it reaches its relay.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The device's SQLite file (created on first use).
    #[arg(long, value_name = "FILE", global = true)]
    data: Option<PathBuf>,
    /// The account; needed when the file is new, checked otherwise.
    #[arg(long, global = true)]
    account: Option<String>,
    /// The relay, as host:port, for commands that go online.
    #[arg(long, value_name = "HOST:PORT", global = true)]
    relay: Option<String>,
    /// A token the relay accepts for the account (see `tandem token`).
    #[arg(long, global = true)]
    token: Option<String>,
    /// The device's name, used when the file is new.
    #[arg(long, default_value = "cli", global = true)]
    name: String,
    /// The device's platform (android, ios, web, windows, macos, linux or
    /// any other name), used when the file is new.
    #[arg(long, default_value = "linux", global = true)]
    platform: String,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Send a message to a conversation (u:<user>, g:<group>, t:<thread>).
    Send {
        conversation: String,
        body: String,
    },
    /// Store a message that arrived from the IM service (idempotent by id).
    Ingest {
        conversation: String,
        sender: String,
        id: String,
        body: String,
        /// When it was sent, in ms since the epoch (default: now).
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// Recall a message.
    Recall {
        message: String,
    },
    /// Delete messages for this account on every device.
    DeleteMessages {
        #[arg(required = true)]
        messages: Vec<String>,
    },
    /// Record the other party's receipt for a message.
    Receipt {
        message: String,
        receipt: ReceiptArg,
    },
    /// Mark a conversation read up to a message.
    Read {
        conversation: String,
        message: String,
    },
    /// Clear the unread count of a conversation, or of all with --all.
    ClearUnread {
        conversation: Option<String>,
        #[arg(long, conflicts_with = "conversation")]
        all: bool,
    },
    Pin {
        conversation: String,
    },
    Unpin {
        conversation: String,
    },
    /// Delete a conversation: clear it up to now and drop it from the list.
    DeleteConversation {
        conversation: String,
    },
    /// Add (or with --remove, remove) a mark on a conversation.
    Mark {
        conversation: String,
        mark: String,
        #[arg(long)]
        remove: bool,
    },
    /// Turn do-not-disturb on or off for a conversation.
    Dnd {
        conversation: String,
        state: OnOff,
    },
    /// Set a conversation's do-not-disturb mode: which messages notify, and
    /// an optional quiet time (--until-ms, or a daily --window HH:MM-HH:MM
    /// at --utc-offset ±HH:MM) during which none do.
    DndMode {
        conversation: String,
        remind: RemindArg,
        /// Nothing notifies until this time, in ms since the epoch.
        #[arg(long, conflicts_with = "window")]
        until_ms: Option<i64>,
        /// Nothing notifies every day in this window, e.g. 22:00-07:00.
        #[arg(long, value_parser = parse_window)]
        window: Option<(u16, u16)>,
        /// The UTC offset the window is at, e.g. +02:00 (default +00:00).
        #[arg(long, value_parser = parse_offset, requires = "window", allow_hyphen_values = true)]
        utc_offset: Option<i16>,
    },
    /// Print which of a conversation's messages notify now (or --at-ms).
    DndStatus {
        conversation: String,
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// List a group's members muted now (or --at-ms): mutes end by
    /// themselves.
    Muted {
        group: String,
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// Record a group read receipt: a member read a group message.
    GroupRead {
        message: String,
        member: String,
    },
    /// Print the group members who have read a message.
    ReadBy {
        message: String,
    },
    /// Pin a message in its conversation.
    PinMessage {
        conversation: String,
        message: String,
    },
    /// Unpin a message.
    UnpinMessage {
        conversation: String,
        message: String,
    },
    /// Contact operations.
    #[command(subcommand)]
    Contact(ContactCmd),
    /// A contact operation with a free-form ext the other devices' event
    /// carries: tandem contact-ext --ext TEXT accept bob.
    ContactExt {
        #[arg(long)]
        ext: String,
        #[command(subcommand)]
        op: ContactCmd,
    },
    /// Group operations.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Thread operations.
    #[command(subcommand)]
    Thread(ThreadCmd),
    /// Connect to the relay, exchange everything, exit when in step.
    Sync,
    /// List the account's devices (online).
    Devices,
    /// Force another device offline, or all others with --all-others.
    Kick {
        device: Option<String>,
        #[arg(long, conflicts_with = "device")]
        all_others: bool,
    },
    /// Send a text payload to another device of the account (online).
    SendToDevice {
        device: String,
        text: String,
    },
    /// Print the whole account state.
    State {
        /// As stable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the multi-device events not yet seen, then acknowledge them.
    Events {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Keep running and print events as they arrive (online when
        /// --relay and --token are given).
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReceiptArg {
    Delivered,
    Read,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Which messages notify.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RemindArg {
    All,
    MentionsOnly,
    None,
}

/// `HH:MM-HH:MM` → minutes after midnight.
fn parse_window(text: &str) -> Result<(u16, u16), String> {
    let minute = |hm: &str| -> Option<u16> {
        let (h, m) = hm.split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    text.split_once('-')
        .and_then(|(a, b)| Some((minute(a)?, minute(b)?)))
        .ok_or_else(|| format!("expected HH:MM-HH:MM, got {text:?}"))
}

/// `+HH:MM` or `-HH:MM` → minutes.
fn parse_offset(text: &str) -> Result<i16, String> {
    let bad = || format!("expected +HH:MM or -HH:MM, got {text:?}");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i16, i16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..60).contains(&m) || !(0..=14).contains(&h) {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

#[derive(Debug, Subcommand)]
pub enum ContactCmd {
    /// Send a contact request.
    Add {
        user: String,
        #[arg(default_value = "")]
        greeting: String,
    },
    Accept {
        user: String,
    },
    Decline {
        user: String,
    },
    Remove {
        user: String,
    },
    Block {
        user: String,
    },
    Unblock {
        user: String,
    },
    Remark {
        user: String,
        remark: String,
    },
    /// Record a contact request someone sent this account (as it arrived
    /// from the IM service); accept or decline it afterwards.
    Receive {
        user: String,
        #[arg(default_value = "")]
        greeting: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    Create {
        group: String,
        name: String,
        members: Vec<String>,
    },
    Destroy {
        group: String,
    },
    Join {
        group: String,
    },
    Leave {
        group: String,
    },
    Apply {
        group: String,
        #[arg(default_value = "")]
        reason: String,
    },
    AcceptApplication {
        group: String,
        user: String,
    },
    DeclineApplication {
        group: String,
        user: String,
        #[arg(default_value = "")]
        reason: String,
    },
    Invite {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    AcceptInvitation {
        group: String,
        inviter: String,
    },
    DeclineInvitation {
        group: String,
        inviter: String,
        #[arg(default_value = "")]
        reason: String,
    },
    Kick {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    Ban {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    Allow {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    BlockMessages {
        group: String,
    },
    UnblockMessages {
        group: String,
    },
    TransferOwner {
        group: String,
        new_owner: String,
    },
    AddAdmin {
        group: String,
        user: String,
    },
    RemoveAdmin {
        group: String,
        user: String,
    },
    Mute {
        group: String,
        /// Muted until this time, in ms since the epoch; the mute ends by
        /// itself then.
        until_ms: i64,
        #[arg(required = true)]
        users: Vec<String>,
    },
    Unmute {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    AllowListAdd {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    AllowListRemove {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    MuteAll {
        group: String,
    },
    UnmuteAll {
        group: String,
    },
    /// Update the group's info; fields not given stay as they are.
    Update {
        group: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        announcement: Option<String>,
    },
    /// Set member attributes, as key=value pairs.
    SetAttributes {
        group: String,
        user: String,
        #[arg(required = true, value_parser = parse_pair)]
        attributes: Vec<(String, String)>,
    },
    /// Record an invitation to a group that arrived from the IM service; the
    /// group is pending (invited) until accept-invitation or
    /// decline-invitation.
    ReceiveInvitation {
        group: String,
        inviter: String,
    },
    /// Record that a user this account invited accepted: now a member.
    InviteeAccepted {
        group: String,
        user: String,
    },
    /// Record that a user this account invited declined.
    InviteeDeclined {
        group: String,
        user: String,
        #[arg(default_value = "")]
        reason: String,
    },
    /// Record an application to join a group, to accept or decline later.
    ReceiveApplication {
        group: String,
        user: String,
        #[arg(default_value = "")]
        reason: String,
    },
    /// Remove member attributes by key.
    RemoveAttributes {
        group: String,
        user: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Record that the IM service disabled the group.
    Disable {
        group: String,
    },
    /// Record that the IM service enabled the group again.
    Enable {
        group: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ThreadCmd {
    Create {
        thread: String,
        group: String,
        name: String,
    },
    Destroy {
        thread: String,
    },
    Join {
        thread: String,
        group: String,
    },
    Leave {
        thread: String,
    },
    Update {
        thread: String,
        name: String,
    },
    Kick {
        thread: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn run(args: DeviceArgs, command: DeviceCommand) -> anyhow::Result<()> {
    let mut engine = open(&args)?;
    match command {
        DeviceCommand::Sync => online(args, engine, |_| async { Ok(()) }),
        DeviceCommand::Devices => online(args, engine, |device| async move {
            let devices = device.devices().await?;
            for d in devices {
                println!(
                    "{}  {:<16} {:<8} online={} first_login_ms={} last_seen_ms={}",
                    d.id, d.name, d.platform, d.online, d.first_login_ms, d.last_seen_ms
                );
            }
            Ok(())
        }),
        DeviceCommand::Kick { device, all_others } => {
            let target = match (device, all_others) {
                (Some(d), false) => Some(d.parse::<DeviceId>()?),
                (None, true) => None,
                _ => bail!("name a device, or pass --all-others"),
            };
            online(args, engine, move |device| async move {
                match target {
                    Some(t) => device.kick_device(t).await?,
                    None => device.kick_all_other_devices().await?,
                }
                Ok(())
            })
        }
        DeviceCommand::SendToDevice { device, text } => {
            let to: DeviceId = device.parse()?;
            online(args, engine, move |device| async move {
                let id = device.send_to_device(to, text.into_bytes()).await?;
                println!("sent payload {}", hex(&id.0));
                Ok(())
            })
        }
        DeviceCommand::State { json } => print_state(&engine, json),
        DeviceCommand::ReadBy { message } => {
            let members = engine.group_read_by(&MessageId::new(message)?)?;
            println!("read by {}: {}", members.len(), members.join(", "));
            Ok(())
        }
        DeviceCommand::Muted { group, at_ms } => {
            let at = at_ms.unwrap_or_else(now_ms);
            for member in engine.muted_members(&GroupId::new(group)?, at)? {
                println!("{} until {}", member.user_id, member.muted_until_ms);
            }
            Ok(())
        }
        DeviceCommand::DndStatus {
            conversation,
            at_ms,
        } => {
            let conversation: ConversationId = conversation.parse()?;
            let at = at_ms.unwrap_or_else(now_ms);
            let mode = engine.do_not_disturb(&conversation)?;
            println!(
                "{conversation}: {} notify at {at} (mode {})",
                match engine.remind_type_at(&conversation, at)? {
                    RemindType::All => "all messages",
                    RemindType::MentionsOnly => "only mentions",
                    _ => "no messages",
                },
                serde_json::to_string(&mode)?
            );
            Ok(())
        }
        DeviceCommand::Events { json, follow } => {
            if follow {
                follow_events(args, engine, json)
            } else {
                for event in engine.pending_events(usize::MAX >> 1)? {
                    print_event(&event, json);
                    engine.ack_events(event.seq)?;
                }
                Ok(())
            }
        }
        local => {
            let op = to_op(local)?;
            let performed = engine.perform(now_ms(), op)?;
            match (&performed.message_id, &performed.recorded) {
                (Some(id), _) => println!("ok: message {id}"),
                (None, Some(_)) => println!("ok"),
                (None, None) => println!("ok: nothing to change"),
            }
            Ok(())
        }
    }
}

/// Opens the device, taking the account from the file when not given.
fn open(args: &DeviceArgs) -> anyhow::Result<Engine> {
    let path = args
        .data
        .clone()
        .ok_or_else(|| anyhow!("device commands need --data <file>"))?;
    let account = match &args.account {
        Some(a) => a.clone(),
        None => {
            let existing = if path.exists() {
                DeviceStore::open(Location::File(&path))?.identity()?
            } else {
                None
            };
            existing
                .map(|i| i.account)
                .ok_or_else(|| anyhow!("{} is a new device: pass --account", path.display()))?
        }
    };
    let config = Config {
        store: StorePath::File(path.clone()),
        account: AccountId::new(account)?,
        device_name: args.name.clone(),
        platform: args
            .platform
            .parse()
            .unwrap_or_else(|e: std::convert::Infallible| match e {}),
    };
    Engine::open(config, now_ms(), random_device_id)
        .with_context(|| format!("opening {}", path.display()))
}

fn random_device_id() -> DeviceId {
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if from_os.is_err() {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&now_ms().to_le_bytes());
        hasher.update(&std::process::id().to_le_bytes());
        bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    }
    DeviceId(bytes)
}

/// Goes online, waits until in step, runs `then`, waits until in step
/// again, and goes offline.
fn online<F, Fut>(args: DeviceArgs, engine: Engine, then: F) -> anyhow::Result<()>
where
    F: FnOnce(std::sync::Arc<OnlineDevice>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let relay = args
        .relay
        .ok_or_else(|| anyhow!("this command needs --relay <host:port>"))?;
    let token = args
        .token
        .ok_or_else(|| anyhow!("this command needs --token (see `tandem token`)"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let device = std::sync::Arc::new(OnlineDevice::spawn(
            engine,
            OnlineConfig {
                relay: relay.clone(),
                token,
                start_online: true,
                backoff: Backoff::default(),
            },
        )?);
        let result = async {
            wait_in_step(&device, &relay).await?;
            then(device.clone()).await?;
            wait_in_step(&device, &relay).await
        }
        .await;
        let device = std::sync::Arc::try_unwrap(device)
            .map_err(|_| anyhow!("the device is still in use"))?;
        device.shutdown().await?;
        result
    })
}

async fn wait_in_step(device: &OnlineDevice, relay: &str) -> anyhow::Result<()> {
    let mut status = device.status();
    let waited = tokio::time::timeout(
        NETWORK_TIMEOUT,
        status.wait_for(|s| s.in_step || s.kicked.is_some() || refused(s)),
    )
    .await;
    let status = match waited {
        Ok(Ok(s)) => s.clone(),
        _ => {
            let s = device.status().borrow().clone();
            bail!(
                "not in step with {relay} after {NETWORK_TIMEOUT:?}{}",
                s.last_error.map(|e| format!(": {e}")).unwrap_or_default()
            );
        }
    };
    if let Some((by, reason)) = status.kicked {
        bail!("this device was kicked by {by}: {reason}");
    }
    if let Some(error) = status.last_error.filter(|_| !status.in_step) {
        bail!("the relay refused: {error}");
    }
    Ok(())
}

/// A refusal the device will not retry (bad or revoked token, too many
/// devices): nothing to wait for.
fn refused(status: &tandem_engine::net::Status) -> bool {
    !status.connected
        && status.last_error.as_deref().is_some_and(|e| {
            [
                "Unauthorized",
                "TokenExpired",
                "CredentialsRevoked",
                "TooManyDevices",
                "UnsupportedVersion",
            ]
            .iter()
            .any(|code| e.starts_with(code))
        })
}

fn follow_events(args: DeviceArgs, engine: Engine, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let start_online = args.relay.is_some() && args.token.is_some();
        let device = OnlineDevice::spawn(
            engine,
            OnlineConfig {
                relay: args.relay.unwrap_or_default(),
                token: args.token.unwrap_or_default(),
                start_online,
                backoff: Backoff::default(),
            },
        )?;
        let mut events = device.events();
        loop {
            tokio::select! {
                event = events.next() => {
                    let event = event?;
                    print_event(&event, json);
                    device.ack_events(event.seq).await?;
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        device.shutdown().await?;
        Ok(())
    })
}

fn print_event(event: &Event, json: bool) {
    if json {
        println!("{}", event.to_json());
    } else {
        let value = event.to_json_value();
        println!(
            "#{} from {} at {}: {} {}{}{}",
            event.seq,
            event.source_device,
            event.made_at_ms,
            value["category"].as_str().unwrap_or("?"),
            value["op"].as_str().unwrap_or("?"),
            event
                .ext
                .as_ref()
                .map(|ext| format!(" ext={ext:?}"))
                .unwrap_or_default(),
            if event.superseded {
                " (superseded)"
            } else {
                ""
            }
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The account state as stable JSON: everything two converged devices
/// agree on, in a fixed order.
pub fn state_json(engine: &Engine) -> anyhow::Result<serde_json::Value> {
    let state = engine.state()?;
    Ok(json!({
        "account": engine.device().account.as_str(),
        "document_heads": engine.doc_heads()?,
        "conversations": state.conversations.iter().map(|c| json!({
            "id": c.id,
            "listed": c.listed,
            "pinned": c.settings.pinned,
            "do_not_disturb": json!(c.settings.do_not_disturb),
            "marks": c.settings.marks,
            "cleared_up_to_ms": c.settings.cleared_up_to_ms,
            "read_at_ms": c.settings.read_at_ms,
            "read_message": c.settings.read_message,
            "last_message": c.last_message,
            "last_activity_ms": c.last_activity_ms,
            "unread": c.unread,
        })).collect::<Vec<_>>(),
        "messages": state.messages.iter().map(|m| json!({
            "id": m.id,
            "conversation": m.conversation,
            "sender": m.sender,
            "sent_at_ms": m.sent_at_ms,
            "body": m.body,
            "recalled": m.recalled,
            "deleted": m.deleted,
            "receipt": format!("{:?}", m.receipt).to_lowercase(),
        })).collect::<Vec<_>>(),
        "contacts": state.contacts.iter().map(|c| json!({
            "user": c.user_id, "status": c.status.as_str(), "remark": c.remark, "since_ms": c.since_ms,
        })).collect::<Vec<_>>(),
        "blocklist": state.blocklist.iter().map(|b| json!({
            "user": b.user_id, "since_ms": b.since_ms,
        })).collect::<Vec<_>>(),
        "groups": state.groups.iter().map(|g| json!({
            "id": g.id,
            "state": g.state.as_str(),
            "name": g.name,
            "description": g.description,
            "announcement": g.announcement,
            "owner": g.owner,
            "messages_blocked": g.messages_blocked,
            "mute_all": g.mute_all,
            "disabled": g.disabled,
            "members": g.members.iter().map(|m| json!({
                "user": m.user_id, "role": m.role.as_str(), "muted_until_ms": m.muted_until_ms,
            })).collect::<Vec<_>>(),
            "banned": g.banned,
            "allow_list": g.allowed,
            "invited": g.invited,
            "applicants": g.applicants,
            "attributes": g.attributes.iter().map(|a| json!({
                "user": a.user_id, "key": a.key, "value": a.value,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "threads": state.threads.iter().map(|t| json!({
            "id": t.id, "group": t.group_id, "name": t.name, "members": t.members,
        })).collect::<Vec<_>>(),
        "group_acks": state.group_acks.iter().map(|(m, u)| json!({
            "message": m, "member": u,
        })).collect::<Vec<_>>(),
        "pinned_messages": state.pinned_messages.iter().map(|(c, p)| json!({
            "conversation": c, "message": p.message, "pinned_at_ms": p.pinned_at_ms,
        })).collect::<Vec<_>>(),
    }))
}

fn print_state(engine: &Engine, json: bool) -> anyhow::Result<()> {
    let value = state_json(engine)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let device = engine.device();
    println!(
        "device {} ({}, {}) of account {}",
        device.device_id, device.name, device.platform, device.account
    );
    println!("conversations:");
    for c in engine.conversations(0, 1_000)? {
        println!(
            "  {:<24} unread {:<4} {}{}",
            c.id,
            c.unread,
            if c.settings.pinned { "pinned " } else { "" },
            c.last_message.as_deref().unwrap_or("")
        );
    }
    let state = engine.state()?;
    println!("messages: {}", state.messages.len());
    println!("contacts:");
    for c in &state.contacts {
        println!("  {} ({}) {}", c.user_id, c.status, c.remark);
    }
    println!(
        "blocked: {}",
        state
            .blocklist
            .iter()
            .map(|b| b.user_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("groups:");
    for g in &state.groups {
        println!(
            "  {} {:?} owner {} ({} members)",
            g.id,
            g.name,
            g.owner,
            g.members.len()
        );
    }
    println!("threads:");
    for t in &state.threads {
        println!("  {} in {} {:?}", t.id, t.group_id, t.name);
    }
    Ok(())
}

fn users(ids: Vec<String>) -> anyhow::Result<Vec<UserId>> {
    Ok(ids.into_iter().map(UserId::new).collect::<Result<_, _>>()?)
}

/// The operation a local command performs.
fn to_op(command: DeviceCommand) -> anyhow::Result<Op> {
    let c = |s: String| s.parse::<ConversationId>();
    let u = UserId::new;
    let g = GroupId::new;
    let t = ThreadId::new;
    let m = MessageId::new;
    Ok(match command {
        DeviceCommand::Send { conversation, body } => Op::Message(MessageOp::Send {
            conversation: c(conversation)?,
            body,
        }),
        DeviceCommand::Ingest {
            conversation,
            sender,
            id,
            body,
            at_ms,
        } => Op::Message(MessageOp::Ingest {
            message: IncomingMessage {
                id: m(id)?,
                conversation: c(conversation)?,
                sender: u(sender)?,
                sent_at_ms: at_ms.unwrap_or_else(now_ms),
                body,
            },
        }),
        DeviceCommand::Recall { message } => Op::Message(MessageOp::Recall {
            message: m(message)?,
        }),
        DeviceCommand::DeleteMessages { messages } => Op::Message(MessageOp::DeleteForMe {
            messages: messages.into_iter().map(m).collect::<Result<_, _>>()?,
        }),
        DeviceCommand::Receipt { message, receipt } => Op::Message(MessageOp::Receipt {
            message: m(message)?,
            receipt: match receipt {
                ReceiptArg::Delivered => PeerReceipt::Delivered,
                ReceiptArg::Read => PeerReceipt::Read,
            },
        }),
        DeviceCommand::Read {
            conversation,
            message,
        } => Op::Conversation(ConversationOp::MarkRead {
            conversation: c(conversation)?,
            message: m(message)?,
        }),
        DeviceCommand::ClearUnread { conversation, all } => match (conversation, all) {
            (Some(conversation), false) => Op::Conversation(ConversationOp::ClearUnread {
                conversation: c(conversation)?,
            }),
            (None, true) => Op::Conversation(ConversationOp::ClearAllUnread),
            _ => bail!("name a conversation, or pass --all"),
        },
        DeviceCommand::Pin { conversation } => Op::Conversation(ConversationOp::Pin {
            conversation: c(conversation)?,
        }),
        DeviceCommand::Unpin { conversation } => Op::Conversation(ConversationOp::Unpin {
            conversation: c(conversation)?,
        }),
        DeviceCommand::DeleteConversation { conversation } => {
            Op::Conversation(ConversationOp::Delete {
                conversation: c(conversation)?,
            })
        }
        DeviceCommand::Mark {
            conversation,
            mark,
            remove,
        } => {
            let conversation = c(conversation)?;
            Op::Conversation(if remove {
                ConversationOp::RemoveMark { conversation, mark }
            } else {
                ConversationOp::AddMark { conversation, mark }
            })
        }
        DeviceCommand::Dnd {
            conversation,
            state,
        } => Op::Conversation(ConversationOp::SetDoNotDisturb {
            conversation: c(conversation)?,
            enabled: matches!(state, OnOff::On),
        }),
        DeviceCommand::DndMode {
            conversation,
            remind,
            until_ms,
            window,
            utc_offset,
        } => Op::Conversation(ConversationOp::SetDoNotDisturbMode {
            conversation: c(conversation)?,
            mode: DoNotDisturb {
                remind: match remind {
                    RemindArg::All => RemindType::All,
                    RemindArg::MentionsOnly => RemindType::MentionsOnly,
                    RemindArg::None => RemindType::None,
                },
                quiet: match (until_ms, window) {
                    (Some(until_ms), _) => Some(QuietTime::Until { until_ms }),
                    (None, Some((start_minute, end_minute))) => Some(QuietTime::Daily {
                        start_minute,
                        end_minute,
                        utc_offset_minutes: utc_offset.unwrap_or(0),
                    }),
                    (None, None) => None,
                },
            },
        }),
        DeviceCommand::GroupRead { message, member } => Op::Message(MessageOp::GroupRead {
            message: m(message)?,
            member: u(member)?,
        }),
        DeviceCommand::PinMessage {
            conversation,
            message,
        } => Op::Conversation(ConversationOp::PinMessage {
            conversation: c(conversation)?,
            message: m(message)?,
        }),
        DeviceCommand::UnpinMessage {
            conversation,
            message,
        } => Op::Conversation(ConversationOp::UnpinMessage {
            conversation: c(conversation)?,
            message: m(message)?,
        }),
        DeviceCommand::ContactExt { ext, op } => {
            let Op::Contact(op) = to_op(DeviceCommand::Contact(op))? else {
                unreachable!("a contact command makes a contact operation")
            };
            Op::Contact(op.with_ext(ext))
        }
        DeviceCommand::Contact(cmd) => Op::Contact(match cmd {
            ContactCmd::Add { user, greeting } => ContactOp::Add {
                user: u(user)?,
                greeting,
            },
            ContactCmd::Accept { user } => ContactOp::Accept { user: u(user)? },
            ContactCmd::Decline { user } => ContactOp::Decline { user: u(user)? },
            ContactCmd::Remove { user } => ContactOp::Remove { user: u(user)? },
            ContactCmd::Block { user } => ContactOp::Block { user: u(user)? },
            ContactCmd::Unblock { user } => ContactOp::Unblock { user: u(user)? },
            ContactCmd::Remark { user, remark } => ContactOp::SetRemark {
                user: u(user)?,
                remark,
            },
            ContactCmd::Receive { user, greeting } => ContactOp::ReceiveRequest {
                user: u(user)?,
                greeting,
            },
        }),
        DeviceCommand::Group(cmd) => Op::Group(match cmd {
            GroupCmd::Create {
                group,
                name,
                members,
            } => GroupOp::Create {
                group: g(group)?,
                name,
                members: users(members)?,
            },
            GroupCmd::Destroy { group } => GroupOp::Destroy { group: g(group)? },
            GroupCmd::Join { group } => GroupOp::Join { group: g(group)? },
            GroupCmd::Leave { group } => GroupOp::Leave { group: g(group)? },
            GroupCmd::Apply { group, reason } => GroupOp::Apply {
                group: g(group)?,
                reason,
            },
            GroupCmd::AcceptApplication { group, user } => GroupOp::AcceptApplication {
                group: g(group)?,
                user: u(user)?,
            },
            GroupCmd::DeclineApplication {
                group,
                user,
                reason,
            } => GroupOp::DeclineApplication {
                group: g(group)?,
                user: u(user)?,
                reason,
            },
            GroupCmd::Invite { group, users: list } => GroupOp::Invite {
                group: g(group)?,
                users: users(list)?,
            },
            GroupCmd::AcceptInvitation { group, inviter } => GroupOp::AcceptInvitation {
                group: g(group)?,
                inviter: u(inviter)?,
            },
            GroupCmd::DeclineInvitation {
                group,
                inviter,
                reason,
            } => GroupOp::DeclineInvitation {
                group: g(group)?,
                inviter: u(inviter)?,
                reason,
            },
            GroupCmd::Kick { group, users: list } => GroupOp::Kick {
                group: g(group)?,
                users: users(list)?,
            },
            GroupCmd::Ban { group, users: list } => GroupOp::Ban {
                group: g(group)?,
                users: users(list)?,
            },
            GroupCmd::Allow { group, users: list } => GroupOp::Allow {
                group: g(group)?,
                users: users(list)?,
            },
            GroupCmd::BlockMessages { group } => GroupOp::BlockMessages { group: g(group)? },
            GroupCmd::UnblockMessages { group } => GroupOp::UnblockMessages { group: g(group)? },
            GroupCmd::TransferOwner { group, new_owner } => GroupOp::TransferOwner {
                group: g(group)?,
                new_owner: u(new_owner)?,
            },
            GroupCmd::AddAdmin { group, user } => GroupOp::AddAdmin {
                group: g(group)?,
                user: u(user)?,
            },
            GroupCmd::RemoveAdmin { group, user } => GroupOp::RemoveAdmin {
                group: g(group)?,
                user: u(user)?,
            },
            GroupCmd::Mute {
                group,
                until_ms,
                users: list,
            } => GroupOp::Mute {
                group: g(group)?,
                users: users(list)?,
                until_ms,
            },
            GroupCmd::Unmute { group, users: list } => GroupOp::Unmute {
                group: g(group)?,
                users: users(list)?,
            },
            GroupCmd::AllowListAdd { group, users: list } => GroupOp::AddAllowList {
                group: g(group)?,
                users: users(list)?,
            },
            GroupCmd::AllowListRemove { group, users: list } => GroupOp::RemoveAllowList {
                group: g(group)?,
                users: users(list)?,
            },
            GroupCmd::MuteAll { group } => GroupOp::MuteAll { group: g(group)? },
            GroupCmd::UnmuteAll { group } => GroupOp::UnmuteAll { group: g(group)? },
            GroupCmd::Update {
                group,
                name,
                description,
                announcement,
            } => GroupOp::UpdateInfo {
                group: g(group)?,
                update: GroupInfoUpdate {
                    name,
                    description,
                    announcement,
                },
            },
            GroupCmd::SetAttributes {
                group,
                user,
                attributes,
            } => GroupOp::SetMemberAttributes {
                group: g(group)?,
                user: u(user)?,
                attributes,
            },
            GroupCmd::ReceiveInvitation { group, inviter } => GroupOp::ReceiveInvitation {
                group: g(group)?,
                inviter: u(inviter)?,
            },
            GroupCmd::InviteeAccepted { group, user } => GroupOp::InviteeAccepted {
                group: g(group)?,
                user: u(user)?,
            },
            GroupCmd::InviteeDeclined {
                group,
                user,
                reason,
            } => GroupOp::InviteeDeclined {
                group: g(group)?,
                user: u(user)?,
                reason,
            },
            GroupCmd::ReceiveApplication {
                group,
                user,
                reason,
            } => GroupOp::ReceiveApplication {
                group: g(group)?,
                user: u(user)?,
                reason,
            },
            GroupCmd::RemoveAttributes { group, user, keys } => GroupOp::RemoveMemberAttributes {
                group: g(group)?,
                user: u(user)?,
                keys,
            },
            GroupCmd::Disable { group } => GroupOp::Disable { group: g(group)? },
            GroupCmd::Enable { group } => GroupOp::Enable { group: g(group)? },
        }),
        DeviceCommand::Thread(cmd) => Op::Thread(match cmd {
            ThreadCmd::Create {
                thread,
                group,
                name,
            } => ThreadOp::Create {
                thread: t(thread)?,
                group: g(group)?,
                name,
            },
            ThreadCmd::Destroy { thread } => ThreadOp::Destroy { thread: t(thread)? },
            ThreadCmd::Join { thread, group } => ThreadOp::Join {
                thread: t(thread)?,
                group: g(group)?,
            },
            ThreadCmd::Leave { thread } => ThreadOp::Leave { thread: t(thread)? },
            ThreadCmd::Update { thread, name } => ThreadOp::Update {
                thread: t(thread)?,
                name,
            },
            ThreadCmd::Kick {
                thread,
                users: list,
            } => ThreadOp::Kick {
                thread: t(thread)?,
                users: users(list)?,
            },
        }),
        DeviceCommand::Sync
        | DeviceCommand::Devices
        | DeviceCommand::Kick { .. }
        | DeviceCommand::SendToDevice { .. }
        | DeviceCommand::State { .. }
        | DeviceCommand::DndStatus { .. }
        | DeviceCommand::Muted { .. }
        | DeviceCommand::ReadBy { .. }
        | DeviceCommand::Events { .. } => unreachable!("handled in run: not a local operation"),
    })
}
