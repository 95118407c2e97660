//! Replies to notifications in the terminal: `perch devices replies` prints what users tapped
//! or typed on their devices, and whether the assistant has read it yet.

use anyhow::Result;

use perch_protocol::notify_replies::NotifyRepliesList;

use crate::output::{ago, print_json, short, table};

/// Prints the replies: a table, or the host's JSON as is.
pub fn print(list: &NotifyRepliesList, json: bool) -> Result<()> {
    if json {
        return print_json(list);
    }
    if list.replies.is_empty() {
        println!("No replies to notifications yet.");
        return Ok(());
    }
    let mut t = table(&["WHEN", "DEVICE", "NOTIFICATION", "REPLY", "READ"]);
    for r in &list.replies {
        let reply = match (&r.action_id, &r.text) {
            (Some(a), Some(text)) => format!("{a}: {text}"),
            (Some(a), None) => format!("tapped {a}"),
            (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        };
        t.add_row(vec![
            ago(Some(r.received_at_ms)),
            format!("{} ({})", r.display_name, short(&r.device_id)),
            r.title.clone().unwrap_or_else(|| r.notification_id.clone()),
            reply,
            if r.seen { "yes" } else { "not yet" }.to_string(),
        ]);
    }
    println!("Replies to notifications (newest first)");
    println!("{t}");
    Ok(())
}
