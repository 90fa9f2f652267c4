//! Device commands: `tandem --data <file> [--account A --relay
//! HOST:PORT[,HOST:PORT…] --token T --name N --platform P] <command>`.
//!
//! Each command opens the device's SQLite file, does one thing and exits.
//! Local operations work offline; `sync`, `devices`, `kick`, `logout` and
//! `send-to-device` connect to the relay for as long as they need. The
//! file keeps the device's credentials (its key, its relay address, its
//! enrollment): after the first `--token`, networked commands need none.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_online::{LastError, Link, OnlineConfig, OnlineDevice, Status, StopReason};
use tandem_storage::device::{DeviceStore, Location};
use tandem_transport::{DeviceInfo, EnrollmentState};

/// Which device, and how it reaches its relay.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The device's SQLite file (created on first use).
    #[arg(long, value_name = "FILE", global = true)]
    data: Option<PathBuf>,
    /// The account; needed when the file is new, checked otherwise.
    #[arg(long, global = true)]
    account: Option<String>,
    /// The relay, for commands that go online: host:port (its TCP
    /// listener) or ws://host:port[/path] (its WebSocket listener, `tandem
    /// relay --listen-ws`; no wss:// yet). Several relay nodes serving one
    /// database go comma-separated (host:port,host:port): the device
    /// connects to the first and, when a connection is lost or an attempt
    /// fails, moves to the next, resuming where it was. Kept in the
    /// device's file, so later commands need it not.
    #[arg(long, value_name = "ADDRESS[,ADDRESS...]", global = true, value_parser = relay_list)]
    relay: Option<String>,
    /// A login token (see `tandem token`): logs the device in at its first
    /// networked command, or again after a kick. The device keeps its
    /// credentials, so later commands need none; passing again the token
    /// it logged in with is harmless. A token of the manage purpose lets
    /// `devices` and `kick` work without the device being admitted.
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

/// `--relay` once every address in it parses, each trimmed, joined by
/// commas.
fn relay_list(text: &str) -> Result<String, tandem_online::RelaysError> {
    let relays = tandem_online::split_relays(text);
    tandem_online::parse_relays(&relays)?;
    Ok(relays.join(","))
}

impl DeviceArgs {
    /// `--relay`: its addresses, trimmed, joined by commas.
    pub fn relay(&self) -> Option<&str> {
        self.relay.as_deref()
    }

    /// `--relay`'s addresses, in order.
    fn relays(&self) -> Option<Vec<String>> {
        self.relay.as_deref().map(tandem_online::split_relays)
    }

    /// `--account`, as given.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}

/// Default for `--timeout-s`.
const NETWORK_TIMEOUT_S_DEFAULT: u64 = 30;

/// The most `--timeout-s` accepts: a day.
const NETWORK_TIMEOUT_S_MAX: u64 = 86_400;

/// How long a networked command keeps trying.
#[derive(Debug, Clone, Copy, Args)]
pub struct WaitArgs {
    /// Give up after this many seconds (1 to 86400) if the relay cannot be
    /// reached or the device is not in step by then; failed attempts are
    /// reported on stderr as they happen and retried with backoff.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = NETWORK_TIMEOUT_S_DEFAULT,
        value_parser = clap::value_parser!(u64).range(1..=NETWORK_TIMEOUT_S_MAX)
    )]
    timeout_s: u64,
    /// Print the outcome as JSON on stdout (a failure too: its typed
    /// reason, then a non-zero exit).
    #[arg(long)]
    json: bool,
}

/// Help for every `<CONVERSATION>` argument.
const CONVERSATION_HELP: &str =
    "The conversation: u:<user> with a user, g:<group> in a group, t:<thread> in a thread";

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Send a message to a conversation.
    Send {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// The message text.
        body: String,
    },
    /// Store a message that arrived from the IM service (idempotent by id).
    Ingest {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// The user who sent it.
        sender: String,
        /// The message's id as the IM service gave it.
        id: String,
        /// The message text.
        body: String,
        /// When it was sent, in ms since the epoch (default: now).
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// Recall a message, on every device.
    Recall {
        /// The message's id.
        message: String,
    },
    /// Delete messages for this account on every device.
    DeleteMessages {
        /// The messages' ids.
        #[arg(required = true)]
        messages: Vec<String>,
    },
    /// Record the other party's receipt for a message.
    Receipt {
        /// The message's id.
        message: String,
        /// How far the message got.
        receipt: ReceiptArg,
    },
    /// Mark a conversation read up to a message.
    Read {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// The last message read.
        message: String,
    },
    /// Clear the unread count of a conversation, or of all with --all.
    ClearUnread {
        #[arg(help = CONVERSATION_HELP)]
        conversation: Option<String>,
        /// Clear every conversation's unread count.
        #[arg(long, conflicts_with = "conversation")]
        all: bool,
    },
    /// Pin a conversation to the top of the list, on every device.
    Pin {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
    },
    /// Unpin a conversation, on every device.
    Unpin {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
    },
    /// Delete a conversation: clear it up to now and drop it from the list.
    DeleteConversation {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
    },
    /// Add (or with --remove, remove) a mark on a conversation.
    Mark {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// The mark, any short text (e.g. `important`).
        mark: String,
        /// Remove the mark instead of adding it.
        #[arg(long)]
        remove: bool,
    },
    /// Turn do-not-disturb on or off for a conversation.
    Dnd {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// On or off.
        state: OnOff,
    },
    /// Set a conversation's do-not-disturb mode: which messages notify, and
    /// an optional quiet time (--until-ms, or a daily --window HH:MM-HH:MM
    /// at --utc-offset ±HH:MM) during which none do.
    DndMode {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// Which of its messages notify.
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
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// Ask about this time, in ms since the epoch, instead of now.
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// List a group's members muted now (or --at-ms): mutes end by
    /// themselves.
    Muted {
        /// The group's id.
        group: String,
        /// Ask about this time, in ms since the epoch, instead of now.
        #[arg(long)]
        at_ms: Option<i64>,
    },
    /// Record a group read receipt: a member read a group message.
    GroupRead {
        /// The group message's id.
        message: String,
        /// The member who read it.
        member: String,
    },
    /// Print the group members who have read a message.
    ReadBy {
        /// The group message's id.
        message: String,
    },
    /// Pin a message in its conversation.
    PinMessage {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// The message's id.
        message: String,
    },
    /// Unpin a message.
    UnpinMessage {
        #[arg(help = CONVERSATION_HELP)]
        conversation: String,
        /// The message's id.
        message: String,
    },
    /// Contact operations.
    #[command(subcommand)]
    Contact(ContactCmd),
    /// A contact operation with a free-form ext the other devices' event
    /// carries: tandem contact-ext --ext TEXT accept bob.
    ContactExt {
        /// The free-form text the event carries.
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
    /// The account key: make it on the first device, link others to it
    /// with link codes. A device that holds it seals what it pushes.
    #[command(subcommand)]
    Link(LinkCmd),
    /// Connect to the relay, exchange everything, exit when in step.
    Sync {
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List the account's devices (online).
    Devices {
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Force another device offline for good (it logs in again only with a
    /// new login token), all others with --all-others, or every device,
    /// this one included, with --all.
    Kick {
        /// The device's id, as `devices` lists it.
        device: Option<String>,
        /// Kick every other device of the account.
        #[arg(long, conflicts_with_all = ["device", "all"])]
        all_others: bool,
        /// Kick every device of the account, this one included.
        #[arg(long, conflicts_with = "device")]
        all: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Log this device out: the relay forgets its login; its data stays.
    /// It logs in again with a new login token.
    Logout {
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Send a text payload to another device of the account (online).
    SendToDevice {
        /// The device's id, as `devices` lists it.
        device: String,
        /// The text to send.
        text: String,
        #[command(flatten)]
        wait: WaitArgs,
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

/// `tandem link …`: the account key and linking a new device to it.
#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Make the account key on the account's first device; prints its
    /// fingerprint.
    CreateKey,
    /// On a new device: print a link code for a device that holds the key
    /// (the same code until it expires, 10 minutes). It holds a secret:
    /// hand it over out of band (a QR code, typed), never through the
    /// relay.
    ShowCode,
    /// On a device that holds the key: grant it to the device that shows
    /// CODE; prints the grant to hand back to it (it may travel any way:
    /// only that device can open it).
    Grant {
        /// The code `link show-code` printed on the new device.
        code: String,
    },
    /// On the new device: accept the grant `link grant` printed ("-"
    /// reads it from stdin); prints the key's fingerprint, the same on
    /// every linked device.
    Accept {
        /// The grant, or "-".
        grant: String,
    },
    /// Whether this device holds the key, and the account's roster.
    Status,
}

/// A receipt from the other party.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReceiptArg {
    /// The message reached the other party.
    Delivered,
    /// The other party read the message.
    Read,
}

/// A switch.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnOff {
    /// Turn it on.
    On,
    /// Turn it off.
    Off,
}

/// Which messages notify.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RemindArg {
    /// Every message notifies.
    All,
    /// Only messages that mention this account notify.
    MentionsOnly,
    /// No message notifies.
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
        /// The user to ask.
        user: String,
        /// A message to go with the request.
        #[arg(default_value = "")]
        greeting: String,
    },
    /// Accept a contact request the user sent this account.
    Accept {
        /// The user who asked.
        user: String,
    },
    /// Decline a contact request the user sent this account.
    Decline {
        /// The user who asked.
        user: String,
    },
    /// Remove a contact.
    Remove {
        /// The contact.
        user: String,
    },
    /// Put a user on the blocklist (contact or not).
    Block {
        /// The user to block.
        user: String,
    },
    /// Take a user off the blocklist.
    Unblock {
        /// The user to unblock.
        user: String,
    },
    /// Set the remark (this account's nickname) for a contact; empty clears it.
    Remark {
        /// The contact.
        user: String,
        /// The name to show.
        remark: String,
    },
    /// Record a contact request someone sent this account (as it arrived
    /// from the IM service); accept or decline it afterwards.
    Receive {
        /// The user who asked.
        user: String,
        /// The message that came with the request.
        #[arg(default_value = "")]
        greeting: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a group owned by this account.
    Create {
        /// The group's id.
        group: String,
        /// The group's name.
        name: String,
        /// The other users added at creation (may be none).
        members: Vec<String>,
    },
    /// Record that this account dissolved a group.
    Destroy {
        /// The group's id.
        group: String,
    },
    /// Join a group.
    Join {
        /// The group's id.
        group: String,
    },
    /// Leave a group.
    Leave {
        /// The group's id.
        group: String,
    },
    /// Apply to join a group that needs approval.
    Apply {
        /// The group's id.
        group: String,
        /// Why, for the admins.
        #[arg(default_value = "")]
        reason: String,
    },
    /// Let an applicant into a group.
    AcceptApplication {
        /// The group's id.
        group: String,
        /// The user who applied.
        user: String,
    },
    /// Turn an applicant down.
    DeclineApplication {
        /// The group's id.
        group: String,
        /// The user who applied.
        user: String,
        /// Why, for the user.
        #[arg(default_value = "")]
        reason: String,
    },
    /// Invite users into a group (listed as members at once).
    Invite {
        /// The group's id.
        group: String,
        /// The users to invite.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Accept an invitation into a group.
    AcceptInvitation {
        /// The group's id.
        group: String,
        /// The user who invited this account.
        inviter: String,
    },
    /// Decline an invitation into a group.
    DeclineInvitation {
        /// The group's id.
        group: String,
        /// The user who invited this account.
        inviter: String,
        /// Why, for the inviter.
        #[arg(default_value = "")]
        reason: String,
    },
    /// Remove members from a group.
    Kick {
        /// The group's id.
        group: String,
        /// The members to remove.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove users from a group and put them on its ban list.
    Ban {
        /// The group's id.
        group: String,
        /// The users to ban.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Take users off a group's ban list (without making them members).
    Allow {
        /// The group's id.
        group: String,
        /// The users to let back in.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Record that this account does not want the group's messages.
    BlockMessages {
        /// The group's id.
        group: String,
    },
    /// Record that this account wants the group's messages again.
    UnblockMessages {
        /// The group's id.
        group: String,
    },
    /// Make a member the group's owner.
    TransferOwner {
        /// The group's id.
        group: String,
        /// The member who becomes owner.
        new_owner: String,
    },
    /// Give a member the admin role.
    AddAdmin {
        /// The group's id.
        group: String,
        /// The member.
        user: String,
    },
    /// Take the admin role away.
    RemoveAdmin {
        /// The group's id.
        group: String,
        /// The admin.
        user: String,
    },
    /// Mute members until a time.
    Mute {
        /// The group's id.
        group: String,
        /// Muted until this time, in ms since the epoch; the mute ends by
        /// itself then.
        until_ms: i64,
        /// The members to mute.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Lift members' mutes.
    Unmute {
        /// The group's id.
        group: String,
        /// The members to unmute.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Put users on the allow list: they may speak while the group is muted.
    AllowListAdd {
        /// The group's id.
        group: String,
        /// The members to add.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Take users off the allow list.
    AllowListRemove {
        /// The group's id.
        group: String,
        /// The members to remove.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Mute the whole group (the allow list may still speak).
    MuteAll {
        /// The group's id.
        group: String,
    },
    /// Lift mute-all.
    UnmuteAll {
        /// The group's id.
        group: String,
    },
    /// Update the group's info; fields not given stay as they are.
    Update {
        /// The group's id.
        group: String,
        /// The new name.
        #[arg(long)]
        name: Option<String>,
        /// The new description.
        #[arg(long)]
        description: Option<String>,
        /// The new announcement.
        #[arg(long)]
        announcement: Option<String>,
    },
    /// Set member attributes, as key=value pairs.
    SetAttributes {
        /// The group's id.
        group: String,
        /// The member.
        user: String,
        /// The attributes, each as key=value.
        #[arg(required = true, value_parser = parse_pair)]
        attributes: Vec<(String, String)>,
    },
    /// Record an invitation to a group that arrived from the IM service; the
    /// group is pending (invited) until accept-invitation or
    /// decline-invitation.
    ReceiveInvitation {
        /// The group's id.
        group: String,
        /// Who invited this account.
        inviter: String,
    },
    /// Record that a user this account invited accepted: now a member.
    InviteeAccepted {
        /// The group's id.
        group: String,
        /// The invited user.
        user: String,
    },
    /// Record that a user this account invited declined.
    InviteeDeclined {
        /// The group's id.
        group: String,
        /// The invited user.
        user: String,
        /// Why, as the IM service gave it.
        #[arg(default_value = "")]
        reason: String,
    },
    /// Record an application to join a group, to accept or decline later.
    ReceiveApplication {
        /// The group's id.
        group: String,
        /// The user who applied.
        user: String,
        /// The applicant's reason, as the IM service gave it.
        #[arg(default_value = "")]
        reason: String,
    },
    /// Remove member attributes by key.
    RemoveAttributes {
        /// The group's id.
        group: String,
        /// The member.
        user: String,
        /// The attribute keys to remove.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Record that the IM service disabled the group.
    Disable {
        /// The group's id.
        group: String,
    },
    /// Record that the IM service enabled the group again.
    Enable {
        /// The group's id.
        group: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ThreadCmd {
    /// Create a thread in a group.
    Create {
        /// The thread's id.
        thread: String,
        /// The group it belongs to.
        group: String,
        /// The thread's name.
        name: String,
    },
    /// Destroy a thread.
    Destroy {
        /// The thread's id.
        thread: String,
    },
    /// Join a thread.
    Join {
        /// The thread's id.
        thread: String,
        /// The group it belongs to.
        group: String,
    },
    /// Leave a thread.
    Leave {
        /// The thread's id.
        thread: String,
    },
    /// Rename a thread.
    Update {
        /// The thread's id.
        thread: String,
        /// The new name.
        name: String,
    },
    /// Remove members from a thread.
    Kick {
        /// The thread's id.
        thread: String,
        /// The members to remove.
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
        DeviceCommand::Sync { wait } => online(args, engine, wait, Ends::InStep, |_| async {
            if wait.json {
                println!("{}", json!({ "ok": true }));
            }
            Ok(())
        }),
        DeviceCommand::Devices { wait } => {
            if is_manage_token(&args) {
                return manage(args, engine, wait, None);
            }
            online(args, engine, wait, Ends::InStep, move |device| async move {
                print_devices(&device.devices().await?, wait.json);
                Ok(())
            })
        }
        DeviceCommand::Kick {
            device,
            all_others,
            all,
            wait,
        } => {
            let target = match (device, all_others, all) {
                (Some(d), false, false) => Kick::Device(d.parse::<DeviceId>()?),
                (None, true, false) => Kick::AllOthers,
                (None, false, true) => Kick::All,
                _ => bail!("name a device, or pass --all-others or --all"),
            };
            if is_manage_token(&args) {
                let Kick::Device(device) = target else {
                    bail!("a manage token kicks one device at a time: name it");
                };
                return manage(args, engine, wait, Some(device));
            }
            let ends = match target {
                Kick::All => Ends::Stopped,
                _ => Ends::InStep,
            };
            online(args, engine, wait, ends, move |device| async move {
                match target {
                    Kick::Device(t) => kick_one(&device, t).await?,
                    Kick::AllOthers => device.kick_all_other_devices().await?,
                    Kick::All => device.kick_all_devices().await?,
                }
                if wait.json {
                    println!("{}", json!({ "ok": true }));
                } else {
                    println!("ok");
                }
                Ok(())
            })
        }
        DeviceCommand::Logout { wait } => online(
            args,
            engine,
            wait,
            Ends::Stopped,
            move |device| async move {
                device.logout().await?;
                if wait.json {
                    println!("{}", json!({ "ok": true }));
                } else {
                    println!("ok: logged out");
                }
                Ok(())
            },
        ),
        DeviceCommand::SendToDevice { device, text, wait } => {
            let to: DeviceId = device.parse()?;
            online(args, engine, wait, Ends::InStep, move |device| async move {
                let id = device.send_to_device(to, text.into_bytes()).await?;
                if wait.json {
                    println!("{}", json!({ "payload": hex(&id.0) }));
                } else {
                    println!("sent payload {}", hex(&id.0));
                }
                Ok(())
            })
        }
        DeviceCommand::State { json } => print_state(&engine, json),
        DeviceCommand::Link(cmd) => link(&mut engine, cmd),
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
    Engine::open(config, now_ms(), Box::new(OsEntropy))
        .with_context(|| format!("opening {}", path.display()))
}

/// What a kick command kicks.
/// Kicks `target` and confirms it: the relay answers a kick only by
/// announcing the new device list, so the command checks the list before
/// (the device must be another one of the account's) and after (it must be
/// revoked), instead of saying "ok" for a kick that did nothing.
async fn kick_one(device: &OnlineDevice, target: DeviceId) -> anyhow::Result<()> {
    if target == device.device_id() {
        bail!(
            "{target} is this device: use `tandem logout`, or `tandem kick --all` for every device"
        );
    }
    let before = device.devices().await?;
    if !before.iter().any(|d| d.id == target) {
        bail!(
            "the account has no device {target} (it has {}); `tandem devices` lists them",
            before.len()
        );
    }
    device.kick_device(target).await?;
    let after = device.devices().await?;
    match after.iter().find(|d| d.id == target) {
        Some(d) if matches!(d.enrollment, EnrollmentState::Revoked { .. }) => Ok(()),
        Some(d) => bail!(
            "the relay did not revoke {target}: its enrollment is {:?}",
            d.enrollment
        ),
        // Removed from the account altogether also keeps it out.
        None => Ok(()),
    }
}

#[derive(Debug, Clone, Copy)]
enum Kick {
    Device(DeviceId),
    AllOthers,
    All,
}

/// How a networked command's session ends once its work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// In step with the relay, then offline.
    InStep,
    /// The work stops the device (a logout, kicking every device): wait
    /// for the relay to say so.
    Stopped,
}

/// The relay addresses to use: `--relay`, kept in the file when given, or
/// the ones the file keeps.
fn relay_of(args: &DeviceArgs, engine: &mut Engine) -> anyhow::Result<Vec<String>> {
    let kept = engine.credentials()?.relays;
    match args.relays() {
        Some(relays) => {
            if kept != relays {
                engine.set_relays(&relays)?;
            }
            Ok(relays)
        }
        None if kept.is_empty() => Err(anyhow!(
            "this command needs --relay <host:port or ws://host:port> (the device keeps it after the first time)"
        )),
        None => Ok(kept),
    }
}

/// The login token to present: `--token` unless it is the one the device's
/// active enrollment was made with (then the key alone logs it in, and a
/// script repeating its flags does not trip over the token being used).
fn token_to_present(args: &DeviceArgs, engine: &Engine) -> anyhow::Result<Option<String>> {
    match &args.token {
        Some(token) => {
            let again = match tandem_relay::token::token_id(token) {
                Some(id) => engine.is_enrolled_with(id)?,
                None => false,
            };
            Ok((!again).then(|| token.clone()))
        }
        // The key alone: the relay says so (typed) if it does not know
        // the device.
        None => Ok(None),
    }
}

fn is_manage_token(args: &DeviceArgs) -> bool {
    args.token
        .as_deref()
        .and_then(tandem_relay::token::token_purpose)
        == Some(tandem_relay::token::Purpose::Manage)
}

/// A device line as `devices` prints it.
pub fn device_line(d: &DeviceInfo) -> String {
    format!(
        "{}  {:<16} {:<8} online={} first_login_ms={} last_seen_ms={}",
        d.id, d.name, d.platform, d.online, d.first_login_ms, d.last_seen_ms
    )
}

/// A device as `devices --json` prints it.
pub fn device_json(d: &DeviceInfo) -> serde_json::Value {
    json!({
        "device": d.id.to_hex(),
        "name": d.name,
        "platform": d.platform.as_str(),
        "online": d.online,
        "first_login_ms": d.first_login_ms,
        "last_seen_ms": d.last_seen_ms,
    })
}

fn print_devices(devices: &[DeviceInfo], json: bool) {
    if json {
        let list: Vec<_> = devices.iter().map(device_json).collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for d in devices {
            println!("{}", device_line(d));
        }
    }
}

/// `devices` and `kick <id>` with a manage token: a connection that lists
/// and kicks without the device being admitted (it holds no online slot),
/// for a device the device limit refused.
fn manage(
    args: DeviceArgs,
    mut engine: Engine,
    wait: WaitArgs,
    kick: Option<DeviceId>,
) -> anyhow::Result<()> {
    use tandem_transport::SessionEvent;

    let relays = relay_of(&args, &mut engine)?;
    let addresses =
        tandem_online::parse_relays(&relays).context("the relay addresses the device keeps")?;
    let config = engine.session_config(args.token.clone())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let timeout = Duration::from_secs(wait.timeout_s);
    let mut relay = relays.join(", ");
    runtime.block_on(async {
        let work = async {
            // The first address that connects.
            let mut connected = None;
            for (address, text) in addresses.iter().zip(&relays) {
                match tandem_transport::driver::connect(address, config.clone()).await {
                    Ok(conn) => {
                        relay.clone_from(text);
                        connected = Some(conn);
                        break;
                    }
                    Err(error) => eprintln!("tandem: relay {text}: cannot connect: {error}"),
                }
            }
            let Some(mut conn) = connected else {
                bail!("cannot connect to the relay at {relay}");
            };
            let mut kicked = false;
            loop {
                let event = conn
                    .next_event()
                    .await
                    .with_context(|| format!("talking to the relay at {relay}"))?;
                match event {
                    Some(SessionEvent::Managing(devices)) => match kick {
                        None => {
                            print_devices(&devices, wait.json);
                            return Ok(());
                        }
                        Some(device) => {
                            conn.session().kick(device)?;
                            conn.flush().await?;
                            kicked = true;
                        }
                    },
                    Some(SessionEvent::DeviceListChanged) if kicked => {
                        if wait.json {
                            println!("{}", json!({ "ok": true }));
                        } else {
                            println!("ok");
                        }
                        return Ok(());
                    }
                    Some(SessionEvent::Refused(refusal)) => {
                        let stop = StopReason::Refused {
                            code: refusal.code,
                            text: refusal.text.clone(),
                            reason: refusal.reason.clone(),
                            devices: refusal.devices.clone(),
                        };
                        if wait.json {
                            println!("{}", stop_json(&stop));
                        }
                        bail!("{}", stopped_text(&stop, &relay));
                    }
                    Some(SessionEvent::Error { code, text }) => {
                        bail!("the relay at {relay} refused ({code}): {text}")
                    }
                    None => bail!("the relay at {relay} closed the connection"),
                    Some(SessionEvent::Closed(reason)) => {
                        bail!("the relay at {relay} closed the connection ({reason:?})")
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            anyhow!(
                "the relay at {relay} did not answer within {}s",
                timeout.as_secs()
            )
        })?
    })
}

/// Goes online, waits until in step, runs `then`, waits until in step
/// again, and goes offline; all of it within `--timeout-s`.
fn online<F, Fut>(
    args: DeviceArgs,
    mut engine: Engine,
    wait: WaitArgs,
    ends: Ends,
    then: F,
) -> anyhow::Result<()>
where
    F: FnOnce(std::sync::Arc<OnlineDevice>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let relays = relay_of(&args, &mut engine)?;
    let login_token = token_to_present(&args, &engine)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let relay = relays.join(", ");
        let mut config = OnlineConfig::with_relays(relays);
        config.login_token = login_token;
        let device = std::sync::Arc::new(OnlineDevice::spawn(engine, config)?);
        let mut waiter = Waiter::new(&device, &relay, wait);
        let result = async {
            waiter.in_step().await?;
            waiter.within(then(device.clone())).await??;
            match ends {
                Ends::InStep => waiter.in_step().await,
                Ends::Stopped => waiter.stopped().await,
            }
        }
        .await;
        drop(waiter);
        let device = std::sync::Arc::try_unwrap(device)
            .map_err(|_| anyhow!("the device is still in use"))?;
        device.shutdown().await?;
        result
    })
}

/// Waits for an online device within one deadline, telling the user on
/// stderr at once when an attempt fails and when the next one is.
struct Waiter {
    status: tokio::sync::watch::Receiver<Status>,
    relay: String,
    timeout: Duration,
    deadline: tokio::time::Instant,
    /// The last failure reported, so a run of the same failure is told once.
    told: Option<String>,
    /// Print a stop as JSON on stdout too.
    json: bool,
}

impl Waiter {
    fn new(device: &OnlineDevice, relay: &str, wait: WaitArgs) -> Waiter {
        let timeout = Duration::from_secs(wait.timeout_s);
        Waiter {
            status: device.status(),
            relay: relay.to_owned(),
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
            told: None,
            json: wait.json,
        }
    }

    /// Runs `work` before the deadline.
    async fn within<T>(&self, work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
        tokio::time::timeout_at(self.deadline, work)
            .await
            .map_err(|_| {
                anyhow!(
                    "the relay at {} did not answer within {}s",
                    self.relay,
                    self.timeout.as_secs()
                )
            })
    }

    /// Waits until the device is in step, it stops (kicked, refused), or
    /// the deadline passes.
    async fn in_step(&mut self) -> anyhow::Result<()> {
        loop {
            let status = self.status.borrow_and_update().clone();
            if status.in_step {
                return Ok(());
            }
            if let Some(stop) = &status.stopped {
                if self.json {
                    println!("{}", stop_json(stop));
                }
                bail!("{}", stopped_text(stop, &self.relay));
            }
            match &status.waiting_for_key {
                // Waiting cannot help: only linking the device does.
                Some(entry) if matches!(entry.reason, tandem_engine::NeedsKey::NotLinked) => {
                    if self.json {
                        println!(
                            "{}",
                            json!({ "ok": false, "waiting_for_key": entry.seq, "reason": entry.reason.to_string() })
                        );
                    }
                    bail!(
                        "stopped before relay log entry {} (everything before it merged): {}; \
                     run `tandem link show-code` here and `tandem link grant <code>` \
                     on a device that holds the key, then sync again",
                        entry.seq,
                        entry.reason
                    );
                }
                // An origin or epoch not known yet may come: the device
                // reads the entry again, and says so once.
                Some(entry) => self.say_once(format!(
                    "waiting before relay log entry {}: {}",
                    entry.seq, entry.reason
                )),
                None => {}
            }
            if let Some(entry) = &status.refused_entry {
                self.say_once(format!(
                    "refused relay log entry {} and merged nothing of it{}: {}; \
                     fetching it again in {}s",
                    entry.seq,
                    entry
                        .tamper
                        .map(|t| format!(" (tampered with: {t:?})"))
                        .unwrap_or_default(),
                    entry.error,
                    tandem_engine::sync::REQUEST_TIMEOUT_MS / 1000
                ));
            }
            if let Some(error) = &status.last_error {
                self.tell(error);
            }
            tokio::select! {
                changed = self.status.changed() => {
                    changed.map_err(|_| anyhow!("the device stopped"))?;
                }
                _ = tokio::time::sleep_until(self.deadline) => {
                    let status = self.status.borrow().clone();
                    bail!("{}", self.gave_up(&status));
                }
            }
        }
    }

    /// Waits until the relay stops the device (after a logout, or kicking
    /// every device): the revocation is then recorded in its file.
    async fn stopped(&mut self) -> anyhow::Result<()> {
        let deadline = self.deadline;
        let relay = self.relay.clone();
        let timeout = self.timeout;
        let stop = tokio::time::timeout_at(deadline, self.status.wait_for(|s| s.stopped.is_some()))
            .await
            .map_err(|_| {
                anyhow!(
                    "the relay at {relay} did not confirm within {}s",
                    timeout.as_secs()
                )
            })?
            .map_err(|_| anyhow!("the device stopped"))?
            .stopped
            .clone();
        match stop {
            Some(StopReason::Kicked(_)) => Ok(()),
            Some(other) => bail!("{}", stopped_text(&other, &self.relay)),
            None => Ok(()),
        }
    }

    /// Reports a failed attempt that will be retried, unless the same
    /// failure was just reported.
    fn tell(&mut self, error: &LastError) {
        let Some(retry_in_ms) = error.retry_in_ms else {
            return;
        };
        let what = error.error.to_string();
        if self.told.as_ref() == Some(&what) {
            return;
        }
        // The wait left until the retry, from when the attempt failed.
        let since_ms = error.at.elapsed().map_or(0, |d| d.as_millis());
        let left_ms = u128::from(retry_in_ms).saturating_sub(since_ms);
        eprintln!(
            "tandem: relay {}: {what}; retrying in {:.1}s (giving up after {}s, see --timeout-s)",
            error.relay,
            left_ms as f64 / 1000.0,
            self.timeout.as_secs(),
        );
        self.told = Some(what);
    }

    /// Tells the user `what` on stderr, unless it was the last thing told.
    fn say_once(&mut self, what: String) {
        if self.told.as_ref() != Some(&what) {
            eprintln!("tandem: {what}");
            self.told = Some(what);
        }
    }

    /// The one line that says why waiting ended without success.
    fn gave_up(&self, status: &Status) -> String {
        let after = format!("after {}s", self.timeout.as_secs());
        match (status.link, &status.last_error) {
            (Link::Connected, _) => {
                let why = match (&status.refused_entry, &status.waiting_for_key) {
                    (Some(entry), _) => format!(
                        ": relay log entry {} refused every time it came ({})",
                        entry.seq, entry.error
                    ),
                    (None, Some(entry)) => {
                        format!(
                            ": waiting before relay log entry {} ({})",
                            entry.seq, entry.reason
                        )
                    }
                    (None, None) => String::new(),
                };
                format!(
                    "connected to the relay at {} but not in step {after}{why}",
                    self.relay
                )
            }
            (Link::LoggingIn, _) => format!(
                "the relay at {} did not answer the login {after}",
                self.relay
            ),
            (_, Some(error)) => format!(
                "gave up on the relay at {} {after} and {} failed attempt{}: {}",
                self.relay,
                error.attempt,
                if error.attempt == 1 { "" } else { "s" },
                error.error
            ),
            (_, None) => format!(
                "gave up on the relay at {} {after}: no answer to the connection attempt",
                self.relay
            ),
        }
    }
}

/// Why the device stopped, for the user: one line, with its typed reason
/// and what to do.
fn stopped_text(stop: &StopReason, relay: &str) -> String {
    let mut text = match stop {
        StopReason::Kicked(reason) => format!("this device was forced offline: {reason}"),
        // The relay's text names the reason already (the typed reason is
        // for JSON).
        StopReason::Refused {
            code,
            text,
            devices,
            ..
        } => {
            let mut line = format!("the relay at {relay} refused this device ({code}): {text}");
            if !devices.is_empty() {
                let list: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} {}{}",
                            d.id,
                            d.name,
                            d.platform,
                            if d.online { " online" } else { "" }
                        )
                    })
                    .collect();
                line.push_str(&format!(
                    "; devices: {}; kick one with a manage token (`tandem token --purpose manage`, then `kick <id> --token ...`)",
                    list.join(", ")
                ));
            }
            line
        }
        other => format!("cannot sync with the relay at {relay}: {other}"),
    };
    if stop.needs_login() {
        text.push_str("; pass --token with a new login token (see `tandem token`)");
    }
    text
}

/// A stop as JSON: its stable name, the device that caused it, the
/// relay's code and explanation, the device list.
fn stop_json(stop: &StopReason) -> serde_json::Value {
    let by = |reason: &tandem_transport::OfflineReason| {
        reason.by().map(|by| {
            json!({
                "device": by.id.to_hex(),
                "name": by.name,
                "platform": by.platform.as_str(),
            })
        })
    };
    match stop {
        StopReason::Kicked(reason) => json!({
            "error": "forced_offline",
            "reason": reason.as_str(),
            "by": by(reason),
            "text": reason.to_string(),
        }),
        StopReason::Refused {
            code,
            text,
            reason,
            devices,
        } => json!({
            "error": code.as_str(),
            "reason": reason.as_ref().map(|r| r.as_str()),
            "by": reason.as_ref().and_then(by),
            "text": text,
            "devices": devices.iter().map(device_json).collect::<Vec<_>>(),
        }),
        other => json!({ "error": other.as_str(), "text": other.to_string() }),
    }
}

fn follow_events(args: DeviceArgs, mut engine: Engine, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // Online when the device knows its relay and can log in.
        let relays = relay_of(&args, &mut engine).ok();
        let login_token = token_to_present(&args, &engine).ok();
        let start_online = relays.is_some() && login_token.is_some();
        let mut config = OnlineConfig::with_relays(relays.unwrap_or_default());
        config.start_online = start_online;
        config.login_token = login_token.flatten();
        let device = OnlineDevice::spawn(engine, config)?;
        let mut events = device.events();
        // One listener for the whole run: a Ctrl-C that arrives while an
        // event is being printed or acknowledged is not missed.
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                event = events.next() => {
                    let event = event?;
                    print_event(&event, json);
                    device.ack_events(event.seq).await?;
                }
                _ = &mut ctrl_c => break,
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

/// `tandem link …`.
///
/// A grant travels as one line: the granter's signing key (32 bytes) and
/// the sealed grant, in base32. The new device checks the grant's
/// signature against that key and that the grant's roster lists the
/// granter with it; what proves the grant came from whoever read the code
/// is the code's pre-shared key, which only travelled out of band.
fn link(engine: &mut Engine, cmd: LinkCmd) -> anyhow::Result<()> {
    match cmd {
        LinkCmd::CreateKey => {
            let fingerprint = engine.create_account_key(now_ms())?;
            println!("ok: account key made, fingerprint {fingerprint}");
        }
        LinkCmd::ShowCode => {
            let shown = engine.show_link_code(now_ms())?;
            println!("{}", shown.code);
            eprintln!(
                "link code for device {}, valid until {} (ms since the Unix epoch); \
                 on a device that holds the key run: tandem link grant <code>",
                engine.device().device_id,
                shown.expires_at_ms
            );
        }
        LinkCmd::Grant { code } => {
            let grant = engine.grant_link(&code, now_ms())?;
            let mut line = engine.device().public_key.0.to_vec();
            line.extend_from_slice(&grant);
            println!("{}", GRANT_TEXT.encode(&line));
            eprintln!("on the new device run: tandem link accept <grant>");
        }
        LinkCmd::Accept { grant } => {
            let text = if grant == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("reading the grant from stdin")?;
                text
            } else {
                grant
            };
            let cleaned: String = text
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            let bytes = GRANT_TEXT
                .decode(cleaned.as_bytes())
                .map_err(|e| anyhow!("not a grant that `tandem link grant` printed: {e}"))?;
            if bytes.len() <= 32 {
                bail!("not a grant that `tandem link grant` printed: too short");
            }
            let (key, grant) = bytes.split_at(32);
            let key = DevicePublicKey(key.try_into().expect("32 bytes"));
            let fingerprint = engine.accept_link_grant(grant, &key, now_ms())?;
            println!("ok: linked, fingerprint {fingerprint}");
        }
        LinkCmd::Status => {
            match engine.link_state(now_ms())? {
                LinkState::Linked {
                    generation,
                    fingerprint,
                    ..
                } => println!("linked: key generation {generation}, fingerprint {fingerprint}"),
                LinkState::Unlinked {
                    code_expires_at_ms: Some(at),
                } => println!("not linked: showing a link code until {at}"),
                _ => println!("not linked"),
            }
            for entry in engine.roster()? {
                println!(
                    "roster: {} signing key {} linked by {}",
                    entry.device, entry.sign_pk, entry.linked_by
                );
            }
        }
    }
    Ok(())
}

/// How a grant is written: RFC 4648 base32 without padding, like a link
/// code.
const GRANT_TEXT: data_encoding::Encoding = data_encoding::BASE32_NOPAD;

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
        "roster": state.roster.iter().map(|r| json!({
            "device": r.device.to_hex(), "sign_pk": r.sign_pk.to_hex(),
            "kem_pk": r.kem_pk.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "linked_by": r.linked_by.to_hex(), "linked_at_ms": r.linked_at_ms,
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
        DeviceCommand::Sync { .. }
        | DeviceCommand::Devices { .. }
        | DeviceCommand::Kick { .. }
        | DeviceCommand::Logout { .. }
        | DeviceCommand::SendToDevice { .. }
        | DeviceCommand::State { .. }
        | DeviceCommand::DndStatus { .. }
        | DeviceCommand::Muted { .. }
        | DeviceCommand::ReadBy { .. }
        | DeviceCommand::Events { .. }
        | DeviceCommand::Link(_) => unreachable!("handled in run: not a local operation"),
    })
}
