//! The command socket (`emperor-command-socket`, an imperium extension): one request per
//! connection, one JSON answer. A request is a line, either `COMMAND [VASSAL]` or a JSON
//! object `{"cmd": "...", "vassal": "..."}`. Commands: `list`, `start`, `stop`, `reload`,
//! `respawn-now` (alias `respawn`), `reset-backoff`, `rescan`, `clear-blacklist`.

use crate::emperor::Emperor;
use crate::state::Input;
use serde_json::{Value, json};

fn parse(line: &str) -> (String, Option<String>) {
    let t = line.trim();
    if t.starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(t)
    {
        let cmd = v
            .get("cmd")
            .or_else(|| v.get("command"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let vassal = v.get("vassal").and_then(Value::as_str).map(str::to_owned);
        return (cmd, vassal);
    }
    let mut it = t.splitn(2, char::is_whitespace);
    let cmd = it.next().unwrap_or("").to_owned();
    let vassal = it
        .next()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    (cmd, vassal)
}

impl Emperor {
    fn vassal_summary(&self, id: u64) -> Value {
        match self.vassals.get(&id) {
            Some(v) => json!({
                "id": v.name,
                "monitor": self.monitors.get(v.monitor).map(|m| m.arg()).unwrap_or(""),
                "state": v.life.state_name(),
                "pid": v.pid.unwrap_or(-1),
                "loyal": u8::from(v.life.loyal),
                "ready": u8::from(v.life.ready),
                "accepting": u8::from(v.life.accepting),
                "restarts": v.life.restarts,
                "respawns": v.life.respawns,
                "backoff_ms": self.blacklist.delay_ms(&v.name),
            }),
            None => json!({"state": "removed"}),
        }
    }

    /// Runs one command and renders the answer (one JSON line).
    pub fn command_reply(&mut self, line: &str) -> Vec<u8> {
        let (cmd, vassal) = parse(line);
        let answer = self.command(&cmd, vassal.as_deref());
        let mut out = serde_json::to_vec(&answer).unwrap_or_default();
        out.push(b'\n');
        out
    }

    fn command(&mut self, cmd: &str, vassal: Option<&str>) -> Value {
        let input = match cmd {
            "list" => {
                let ids: Vec<u64> = self.vassals.keys().copied().collect();
                return json!({"ok": true, "vassals": ids.into_iter().map(|i| self.vassal_summary(i)).collect::<Vec<_>>()});
            }
            "rescan" => {
                self.rescan_all();
                return json!({"ok": true});
            }
            "clear-blacklist" => {
                self.clear_blacklist();
                return json!({"ok": true});
            }
            "start" => Input::Start,
            "stop" => Input::Stop,
            "reload" => Input::Reload,
            "respawn-now" | "respawn" => Input::RespawnNow,
            "reset-backoff" | "reset" => Input::ResetBackoff,
            "" => return json!({"ok": false, "error": "empty command"}),
            other => return json!({"ok": false, "error": format!("unknown command '{other}'")}),
        };
        if self.ragnarok.is_some() {
            return json!({"ok": false, "error": "the Emperor is shutting down"});
        }
        let Some(name) = vassal else {
            return json!({"ok": false, "error": format!("'{cmd}' needs a vassal name")});
        };
        let ids = self.find(name);
        let id = match ids.as_slice() {
            [] => return json!({"ok": false, "error": format!("no vassal named '{name}'")}),
            [one] => *one,
            _ => {
                return json!({"ok": false, "error": format!("'{name}' is ambiguous: {} monitors have it", ids.len())});
            }
        };
        crate::vlog!("[emperor] command socket: {cmd} {name}");
        self.apply(id, input);
        json!({"ok": true, "vassal": self.vassal_summary(id)})
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn requests() {
        assert_eq!(
            parse("reload app.ini\n"),
            ("reload".into(), Some("app.ini".into()))
        );
        assert_eq!(parse("list"), ("list".into(), None));
        assert_eq!(
            parse(r#"{"cmd":"stop","vassal":"a b.ini"}"#),
            ("stop".into(), Some("a b.ini".into()))
        );
    }
}
